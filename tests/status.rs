//! Issue 10: `fastfn status` against a real stack: healthy, degraded, busy, stopped and unknown instances, with the
//! LSB exit codes (0 ready, 1 degraded, 3 not running, 4 no such instance) and the JSON fields ops scripts read.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{wait_until, Stack, FASTFN};

/// Runs `fastfn status` for the stack's run base; returns (exit code, stdout).
fn status(stack: &Stack, extra: &[&str]) -> (i32, String) {
    let base = stack.run_dir().parent().expect("run base").to_path_buf();
    let out = Command::new(FASTFN).arg("status").arg("--run-dir").arg(&base).args(extra).env_remove("FN_HOST_PORT").env_remove("FN_HOST_BIND").output().expect("run fastfn status");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status_json(stack: &Stack, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out) = status(stack, &args);
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {out}")))
}

#[test]
fn a_healthy_stack_is_ready_with_every_documented_field() {
    let stack = Stack::new().file("hello/handler.py", "def handler(event):\n    return {}\n").start();
    assert_eq!(stack.get("/hello").status, 200);
    let listen = format!("127.0.0.1:{}", stack.port);
    let (code, table) = status(&stack, &["--listen", &listen]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("hello/handler.py") && table.contains("running") && table.contains(&listen), "{table}");
    let (code, json) = status_json(&stack, &[]);
    assert_eq!(code, 0, "the only instance is found without --listen: {json}");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["state"], "running");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["pid"], stack.pid());
    assert_eq!(json["listen"], listen);
    for field in ["version", "mode", "uptime_s", "functions_root", "runtimes", "sandbox", "nginx", "reload", "failed", "warm_down"] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
    let function = &json["functions"][0];
    for field in ["id", "name", "runtime", "state", "workers", "pool", "restarts", "warm"] {
        assert!(function.get(field).is_some(), "functions[].{field} missing: {function}");
    }
    assert!(json["nginx"]["pid"].as_u64().is_some_and(|p| p > 0), "{json}");
    // Memory and CPU time of every process: the supervisor, nginx's master and workers, each function worker.
    let has_memory = |v: &Value| v["rss_bytes"].as_u64().is_some_and(|b| b > 100_000) && v["cpu_ms"].is_u64();
    assert!(has_memory(&json["usage"]) && has_memory(&json["nginx"]["usage"]), "{json}");
    let nginx_workers = json["nginx"]["workers"].as_array().expect("nginx workers");
    assert_eq!(nginx_workers.len(), 2, "FN_NGINX_WORKERS=2: {json}");
    assert!(nginx_workers.iter().all(has_memory), "{json}");
    let process = &function["processes"][0];
    assert_eq!(process["pid"], function["pid"], "{function}");
    assert!(has_memory(process) && process["uptime_s"].is_u64(), "{function}");
    assert!(table.contains("RSS") && table.contains("nginx worker pid") && !table.contains('\x1b'), "no colour when not a terminal: {table}");
}

#[test]
fn a_crash_loop_makes_status_degraded() {
    let stack = Stack::new()
        .file("ok/handler.py", "def handler(event):\n    return {}\n")
        .file("boom/handler.py", "import os\nos._exit(7)\n")
        .file("boom/fn.config.json", r#"{"keep_warm": {"enabled": true}}"#)
        .start();
    let mut last = (0, String::new());
    assert!(wait_until(Duration::from_secs(20), || {
        last = status(&stack, &[]);
        last.0 == 1 && last.1.contains("failed")
    }), "never degraded with the function failed: {last:?}");
}

#[test]
fn status_answers_while_every_worker_is_busy() {
    let stack = Stack::new()
        .file("slow/handler.py", "import time\ndef handler(event):\n    time.sleep(3)\n    return {}\n")
        .file("slow/fn.config.json", r#"{"timeout_ms": 6000, "worker_pool": {"max_workers": 1}}"#)
        .start();
    let port = stack.port;
    let busy = std::thread::spawn(move || crate::harness::http::get(port, "/slow"));
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    let (code, json) = status_json(&stack, &[]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{json}");
    assert!(took < Duration::from_secs(1), "status took {took:?} while the worker was busy");
    eprintln!("status answered in {} ms while the only worker was busy", took.as_millis());
    assert_eq!(busy.join().expect("thread").status, 200);
}

#[test]
fn a_stopped_instance_is_3_and_an_unknown_one_is_4() {
    let mut stack = Stack::new().file("hello/handler.py", "def handler(event):\n    return {}\n").start();
    let (code, json) = status_json(&stack, &["--listen", "127.0.0.1:1"]);
    assert_eq!(code, 4, "{json}");
    assert_eq!(json["state"], "no-such-instance");
    let _ = stack.signal_and_wait(Signal::SIGTERM, Duration::from_secs(10)).expect("stops");
    let (code, json) = status_json(&stack, &["--listen", &format!("127.0.0.1:{}", stack.port)]);
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["state"], "not-running");
    let (code, table) = status(&stack, &[]);
    assert_eq!(code, 3, "{table}");
    assert!(table.contains("not running"), "{table}");
}

/// Runs `fastfn <verb>` for the stack's run base; returns (exit code, stdout + stderr).
fn verb(stack: &Stack, verb: &str) -> (i32, String) {
    let base = stack.run_dir().parent().expect("run base").to_path_buf();
    let out = Command::new(FASTFN).arg(verb).arg("--run-dir").arg(&base).env_remove("FN_HOST_PORT").env_remove("FN_HOST_BIND").output().expect("run fastfn");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn reload_reports_its_result_and_a_failed_one_keeps_serving() {
    let stack = Stack::new().mode("run").file("a/handler.py", "def handler(event):\n    return {}\n").start();
    std::fs::create_dir_all(stack.functions.path().join("b")).expect("mkdir");
    std::fs::write(stack.functions.path().join("b/handler.py"), "def handler(event):\n    return {'b': 1}\n").expect("write");
    let (code, out) = verb(&stack, "reload");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reloaded: 2 function(s)"), "{out}");
    assert!(wait_until(Duration::from_secs(5), || stack.get("/b").status == 200));

    // The folder disappears: the reload fails, says why, and the last good state keeps serving.
    let moved = stack.functions.path().with_extension("moved");
    std::fs::rename(stack.functions.path(), &moved).expect("move the folder away");
    let (code, out) = verb(&stack, "reload");
    std::fs::rename(&moved, stack.functions.path()).expect("move it back");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("reload failed"), "{out}");
    assert_eq!(stack.get("/b").status, 200);
}

#[test]
fn stop_waits_for_a_graceful_exit() {
    let mut stack = Stack::new().file("hello/handler.py", "def handler(event):\n    return {}\n").start();
    assert_eq!(stack.get("/hello").status, 200);
    let tree = crate::harness::procs::descendants(stack.pid());
    let (code, out) = verb(&stack, "stop");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("stopped (pid {})", stack.pid())), "{out}");
    let status = stack.signal_and_wait(Signal::SIGCONT, Duration::from_secs(1)).expect("already exited");
    assert_eq!(status.code(), Some(0));
    assert!(tree.iter().all(|p| !crate::harness::procs::alive(*p)), "no process remains");
    let (code, out) = verb(&stack, "stop");
    assert_eq!(code, 3, "stopping a stopped instance: {out}");
}

#[test]
fn logs_tail_one_function_and_follow_new_lines() {
    let stack = Stack::new()
        .file("talk/handler.py", "def handler(event):\n    print('talk says', event['query'].get('n'))\n    return {}\n")
        .file("other/handler.py", "def handler(event):\n    print('other says hi')\n    return {}\n")
        .start();
    assert_eq!(stack.get("/talk?n=1").status, 200);
    assert_eq!(stack.get("/other").status, 200);
    let base = stack.run_dir().parent().expect("run base").to_path_buf();
    let logs = |args: &[&str]| {
        let out = Command::new(FASTFN).arg("logs").arg("--run-dir").arg(&base).args(args).output().expect("run fastfn logs");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(wait_until(Duration::from_secs(5), || logs(&["--fn", "talk/handler.py"]).1.contains("talk says 1")));
    let (code, out, _) = logs(&["--fn", "talk/handler.py", "-n", "5"]);
    assert_eq!(code, 0);
    assert!(!out.contains("other says"), "only that function: {out}");
    let (code, _, err) = logs(&["--fn", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("talk_handler.py"), "names the functions that have a log: {err}");
    assert_eq!(logs(&["--process", "php"]).0, 2, "an unknown log is a usage error");

    // --follow prints what is written after it started.
    let mut follower = Command::new(FASTFN)
        .arg("logs")
        .arg("--run-dir")
        .arg(&base)
        .args(["--process", "functions", "-n", "0", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fastfn logs -f");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stack.get("/talk?n=2").status, 200);
    let stdout = follower.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.contains("talk says 2"))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let found = reader.join().expect("reader");
    assert!(found.is_some(), "the new line was followed");
}

#[test]
fn init_templates_answer_on_the_running_stack() {
    let stack = Stack::new().file("keep/handler.py", "def handler(event):\n    return {}\n").start();
    let templates: Vec<&str> = ["python", "node", "php", "go", "lua"].into_iter().filter(|t| *t != "go" || which::which("go").is_ok()).collect();
    for template in &templates {
        let name = format!("new-{template}");
        let out = Command::new(FASTFN).args(["init", &name, "--template", template, "--dir"]).arg(stack.functions.path()).output().expect("run fastfn init");
        assert!(out.status.success(), "{template}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Dev mode hot-reloads the new folders.
    for template in &templates {
        let path = format!("/new-{template}?name=ops");
        let mut last = None;
        let ok = wait_until(Duration::from_secs(60), || {
            let r = stack.get(&path);
            let ok = r.status == 200 && r.json()["hello"] == "ops" && r.json()["function"] == format!("new-{template}");
            last = Some((r.status, r.text()));
            ok
        });
        assert!(ok, "{template}: {last:?}\n{}", stack.stderr());
    }
    let again = Command::new(FASTFN).args(["init", "new-python", "--dir"]).arg(stack.functions.path()).output().expect("run");
    assert_eq!(again.status.code(), Some(1), "an existing folder is refused");
    let bad = Command::new(FASTFN).args(["init", "x", "--template", "cobol", "--dir"]).arg(stack.functions.path()).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}
