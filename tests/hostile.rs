//! Issue 6: hostile handlers against the kernel sandbox (limits, privilege drop, no-new-privs, seccomp). Each attack
//! is denied and an innocent function keeps answering during and after.

use serde_json::json;

use crate::harness::Stack;

const PROBE: &str = include_str!("hostile/probe.py");
const TOKEN: &str = "hostile-admin-token-0123456789abcdef";

fn stack() -> Stack {
    Stack::new()
        .env("FN_ADMIN_TOKEN", TOKEN)
        .env("FN_WORKER_MAX_FILE_SIZE_MB", "1")
        .env("FN_WORKER_MAX_OPEN_FILES", "256")
        .env("FN_WORKER_MAX_PROCESSES", "64")
        .file("probe/handler.py", PROBE)
        .file("probe/fn.config.json", r#"{"timeout_ms": 20000}"#)
        .file("innocent/handler.py", "def handler(event):\n    return {'ok': True}\n")
        .start()
}

fn attempt(stack: &Stack, name: &str) -> serde_json::Value {
    let response = stack.get(&format!("/probe?try={name}"));
    assert_eq!(response.status, 200, "{name}: {}", response.text());
    let innocent = stack.get("/innocent");
    assert_eq!(innocent.status, 200, "the innocent function keeps answering after {name}");
    response.json()["result"].clone()
}

#[test]
fn forbidden_syscalls_fail_with_the_documented_errno() {
    let stack = stack();
    let eperm = json!(libc::EPERM);
    for name in ["ptrace", "unshare", "mount", "bpf", "keyctl"] {
        assert_eq!(attempt(&stack, name), eperm, "{name}");
    }
    assert_eq!(attempt(&stack, "io_uring"), json!(libc::ENOSYS), "io_uring gets ENOSYS so runtimes fall back");
}

#[test]
fn workers_run_with_limits_no_new_privs_seccomp_and_a_minimal_environment() {
    let stack = stack();
    let who = attempt(&stack, "identity");
    assert_eq!(who["no_new_privs"], "1");
    assert_eq!(who["seccomp"], "2", "filter mode");
    assert_eq!(who["dumpable"], 0, "the Python worker makes itself non-dumpable");
    assert_eq!(who["sid_is_self"], true, "its own session");
    assert_eq!(who["limits"]["RLIMIT_CORE"], json!([0, 0]));
    assert_eq!(who["limits"]["RLIMIT_NOFILE"], json!([256, 256]));
    assert_eq!(who["limits"]["RLIMIT_FSIZE"], json!([1048576, 1048576]));
    let env = who["env"].as_object().cloned().unwrap_or_default();
    assert!(env.keys().all(|k| !k.starts_with("FN_ADMIN") && !k.starts_with("FN_CONSOLE")), "{env:?}");
    assert!(!who["env"].to_string().contains(TOKEN), "the admin token is nowhere in the worker's environment");
    if nix::unistd::Uid::effective().is_root() {
        assert_ne!(who["uid"], 0, "started as root, workers drop privileges");
        assert_ne!(who["gid"], 0);
        assert!(who["groups"].as_array().is_some_and(|g| !g.contains(&json!(0))), "no root group: {}", who["groups"]);
    }
}

#[test]
fn resource_attacks_are_contained() {
    let stack = stack();
    assert_eq!(attempt(&stack, "memory"), "MemoryError", "RLIMIT_DATA stops a 4 GiB allocation");
    assert_eq!(attempt(&stack, "files"), "EMFILE");
    assert_eq!(attempt(&stack, "filesize"), "EFBIG", "SIGXFSZ is ignored: the write fails, the worker lives");
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(attempt(&stack, "forks"), "EAGAIN", "RLIMIT_NPROC stops a fork bomb");
    } else {
        eprintln!("skipped the fork bomb: RLIMIT_NPROC applies only when workers run as their own user (as root)");
    }
}
