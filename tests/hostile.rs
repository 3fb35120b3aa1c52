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

fn with_innocent() -> crate::harness::StackBuilder {
    Stack::new().file("innocent/handler.py", "def handler(event):\n    return {'ok': True}\n")
}

/// URL-encodes a path for the probe's query string.
fn q(path: &str) -> String {
    path.bytes().map(|b| if b.is_ascii_alphanumeric() || b"/._-".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn fs(stack: &Stack, action: &str, path: &str) -> serde_json::Value {
    attempt(stack, &format!("{action}&path={}", q(path)))
}

#[test]
fn the_filesystem_is_confined_to_the_function_whatever_the_path_spelling() {
    let outside_dir = tempfile::Builder::new().prefix("ffn-outside-").tempdir_in("/tmp").expect("temp dir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(outside_dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let outside = outside_dir.path().join("world-readable.txt");
    std::fs::write(&outside, "public but not yours").expect("write");
    let stack = with_innocent()
        .file("probe/handler.py", PROBE)
        .file("probe/fn.env.json", r#"{"MINE": {"value": "own-secret-value", "is_secret": true}}"#)
        .file("probe/data.txt", "its own data")
        // One worker, so that the temp dir one request reports is the one the next request writes to.
        .file("probe/fn.config.json", r#"{"worker_pool": {"max_workers": 1}}"#)
        .file("sibling/handler.py", "def handler(event):\n    return {}\n")
        .file("sibling/fn.env.json", r#"{"OTHER": "sibling-secret"}"#)
        .start();
    let root = stack.functions.path().display().to_string();
    let own = format!("{root}/probe");
    let sibling = format!("{root}/sibling");
    let eacces = json!("EACCES");
    assert_eq!(fs(&stack, "read", &format!("{own}/data.txt")), "read 12 bytes", "its own files are readable");
    for (action, path, why) in [
        ("read", format!("{sibling}/handler.py"), "a sibling's handler"),
        ("read", format!("{sibling}/fn.env.json"), "a sibling's env"),
        ("read", format!("{own}/fn.env.json"), "its own env file (strict_fs)"),
        ("read", outside.display().to_string(), "a world-readable file outside the allowed paths"),
        ("read_bytes_path", format!("{sibling}/handler.py"), "bytes paths"),
        ("read", format!("{own}/../sibling/handler.py"), "`..` spelling"),
        ("read", format!("/proc/self/root{sibling}/handler.py"), "/proc/self/root spelling"),
        ("symlink", format!("{sibling}/fn.env.json"), "a symlink it plants"),
        ("list", root.clone(), "listing the functions root"),
        ("write", format!("{own}/pwned.txt"), "writing into its own folder"),
        ("write", outside_dir.path().join("pwned.txt").display().to_string(), "writing outside its tmp"),
        ("exec", "/usr/bin/id".to_string(), "running another program"),
    ] {
        assert_eq!(fs(&stack, action, &path), eacces, "{why}: {action} {path}");
    }
    let who = attempt(&stack, "identity");
    let supervisor = who["ppid"].as_i64().expect("ppid");
    assert_eq!(fs(&stack, "read", &format!("/proc/{supervisor}/environ")), eacces, "another process's environ");
    assert!(fs(&stack, "read", "/proc/self/status").as_str().is_some_and(|r| r.starts_with("read")), "its own /proc is readable");
    let tmp = who["tmp"].as_str().expect("tmp").to_string();
    assert_eq!(fs(&stack, "write", &format!("{tmp}/scratch")), "written", "its private tmp is writable");
    assert!(!outside_dir.path().join("pwned.txt").exists());
    assert!(!stack.functions.path().join("probe/pwned.txt").exists());
}

#[test]
fn opt_outs_are_per_function() {
    let stack = with_innocent()
        .file("probe/handler.py", PROBE)
        .file("probe/fn.env.json", r#"{"MINE": "x"}"#)
        .file("probe/fn.config.json", r#"{"strict_fs": false, "sandbox": {"exec": true}}"#)
        .start();
    let own = format!("{}/probe", stack.functions.path().display());
    assert!(fs(&stack, "read", &format!("{own}/fn.env.json")).as_str().is_some_and(|r| r.starts_with("read")));
    assert!(fs(&stack, "exec", "/usr/bin/id").as_str().is_some_and(|r| r.contains("uid=")));
    let health = stack.get("/_fn/health").json();
    assert_eq!(health["sandbox"]["strict_fs"], true, "{health}");
}

#[test]
fn a_worker_cannot_reach_another_workers_socket_or_the_control_socket() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (workers then run as their own user; as one user, sockets are that user's)");
        return;
    }
    let stack = with_innocent()
        .file("probe/handler.py", PROBE)
        .file("sibling/handler.py", "def handler(event):\n    return {}\n")
        .start();
    assert_eq!(stack.get("/sibling").status, 200);
    let run = stack.run_dir();
    let sibling_socket = std::fs::read_dir(run.join("sock")).expect("sock dir").flatten().map(|e| e.path()).next().expect("a socket");
    for socket in [sibling_socket, run.join("ctl.sock")] {
        assert_eq!(fs(&stack, "connect", &socket.display().to_string()), json!("EACCES"), "{}", socket.display());
    }
}

#[test]
fn node_handlers_are_confined_the_same_way() {
    let stack = with_innocent()
        .file("probe/index.js", include_str!("hostile/probe.js"))
        .file("sibling/handler.py", "def handler(event):\n    return {}\n")
        .file("sibling/fn.env.json", r#"{"OTHER": "sibling-secret"}"#)
        .start();
    let root = stack.functions.path().display().to_string();
    let sibling = format!("{root}/sibling");
    let node = |action: &str, path: &str| -> serde_json::Value {
        let r = stack.get(&format!("/probe?try={action}&path={}", q(path)));
        assert_eq!(r.status, 200, "{action} {path}: {}", r.text());
        assert_eq!(stack.get("/innocent").status, 200);
        r.json()["result"].clone()
    };
    for action in ["read", "read_buffer", "read_url"] {
        assert_eq!(node(action, &format!("{sibling}/fn.env.json")), "EACCES", "{action}");
    }
    assert_eq!(node("list", &root), "EACCES");
    assert_eq!(node("write", &format!("{root}/probe/pwned.js")), "EACCES");
    assert_eq!(node("exec", "/usr/bin/id"), "EACCES");
    let ppid = stack.get("/probe?try=none").json()["ppid"].as_i64().expect("ppid");
    assert_eq!(node("read", &format!("/proc/{ppid}/environ")), "EACCES");
}

#[test]
fn a_cpu_spin_is_stopped_at_the_timeout_and_the_worker_replaced() {
    let stack = with_innocent()
        .file("probe/index.js", include_str!("hostile/probe.js"))
        .file("probe/fn.config.json", r#"{"timeout_ms": 500}"#)
        .start();
    let spin = stack.get("/probe?try=spin");
    assert_eq!(spin.status, 504, "{}", spin.text());
    assert_eq!(stack.get("/innocent").status, 200, "the innocent function answers during and after");
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || stack.get("/probe?try=none").status == 200), "a fresh worker serves");
}

#[test]
fn php_and_go_handlers_are_confined_the_same_way() {
    let stack = with_innocent()
        .file("probe-php/handler.php", include_str!("hostile/probe.php"))
        .file("probe-go/handler.go", include_str!("hostile/probe.go"))
        .file("sibling/handler.py", "def handler(event):\n    return {}\n")
        .file("sibling/fn.env.json", r#"{"OTHER": "sibling-secret"}"#)
        .start();
    let env = format!("{}/sibling/fn.env.json", stack.functions.path().display());
    for probe in ["/probe-php", "/probe-go"] {
        let ask = |what: &str, path: &str| -> String {
            let r = stack.get(&format!("{probe}?try={what}&path={}", q(path)));
            assert_eq!(r.status, 200, "{probe} {what}: {}", r.text());
            assert_eq!(stack.get("/innocent").status, 200);
            r.json()["result"].to_string()
        };
        let read = ask("read", &env);
        assert!(read.to_lowercase().contains("permission denied"), "{probe} read a sibling's env: {read}");
        let exec = ask("exec", "/usr/bin/id");
        assert!(!exec.contains("uid="), "{probe} ran another program: {exec}");
        if nix::unistd::Uid::effective().is_root() {
            assert_ne!(ask("uid", ""), "0", "{probe} runs as root");
        }
    }
}
