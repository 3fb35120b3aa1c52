//! Issue 3, the walking skeleton: the stack boots from a folder, serves Python and Node, maps failures to JSON
//! errors and stops every process it started.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{procs, wait_until, Stack};

const HELLO_PY: &str = "def handler(event):\n    return {\"hello\": event[\"query\"].get(\"name\", \"world\"), \"runtime\": \"python\"}\n";
const HELLO_NODE: &str = "exports.handler = async (event) => ({ hello: event.query.name || 'world', runtime: 'node' });\n";

fn hello_stack() -> Stack {
    Stack::new().file("hello-py/handler.py", HELLO_PY).file("hello-node/index.js", HELLO_NODE).start()
}

#[test]
fn python_and_node_answer_cold_then_warm() {
    let stack = hello_stack();
    assert_eq!(stack.ready["event"], "ready");
    assert_eq!(stack.ready["functions"], 2);
    for (path, runtime) in [("/hello-py", "python"), ("/hello-node", "node")] {
        let cold = stack.get(&format!("{path}?name=cold"));
        assert_eq!(cold.status, 200, "{path}: {}", cold.text());
        assert_eq!(cold.header("content-type"), Some("application/json"));
        assert_eq!(cold.json(), serde_json::json!({"hello": "cold", "runtime": runtime}));
        assert_eq!(cold.header("x-fastfn-function-state"), Some("cold"));
        // The pool (one worker per core by default) grows as requests are spread over it: each new worker's first
        // answer is cold too, then every answer is warm.
        let mut colds = 0;
        for _ in 0..6 {
            let warm = stack.get(&format!("{path}?name=warm"));
            assert_eq!(warm.status, 200);
            assert_eq!(warm.json()["hello"], "warm");
            if warm.header("x-fastfn-function-state") == Some("cold") {
                colds += 1;
            }
        }
        let pool = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        assert!(colds < pool, "{colds} more cold starts for a pool of {pool}");
        assert_eq!(stack.get(path).header("x-fastfn-function-state"), Some("warm"));
    }
    // The human banner names the address and the function count before it says ready.
    let stderr = stack.stderr();
    let banner = stderr.find("2 function(s) from").expect("banner with the function count");
    let ready = stderr.find("ready in").expect("ready line");
    assert!(banner < ready, "{stderr}");
    assert!(stderr.contains(&format!("http://127.0.0.1:{}", stack.port)));
}

#[test]
fn unknown_paths_are_json_404() {
    let stack = hello_stack();
    for path in ["/nope", "/hello-py/extra", "/_fn/nope", "/_FN/catalog", "/"] {
        let response = stack.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(response.json(), serde_json::json!({"error": "not found"}), "{path}");
    }
    let health = stack.get("/_fn/health");
    assert_eq!(health.status, 200);
}

#[test]
fn method_mismatch_is_405_with_allow() {
    let stack = hello_stack();
    let response = stack.request("POST", "/hello-py", &[], Some(b"{}"));
    assert_eq!(response.status, 405, "{}", response.text());
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(response.json()["error"], "method not allowed");
}

#[test]
fn file_routes_with_params_reach_the_handler() {
    let stack = Stack::new()
        .file("users/get.[id].py", "def handler(event, id):\n    return {\"id\": id, \"params\": event[\"params\"]}\n")
        .file("items/post.[sku].js", "exports.handler = (event, params) => ({ sku: params.sku, received: event.body });\n")
        .start();
    let user = stack.get("/users/42");
    assert_eq!(user.status, 200, "{}", user.text());
    assert_eq!(user.json(), serde_json::json!({"id": "42", "params": {"id": "42"}}));
    let item = stack.request("POST", "/items/abc", &[("content-type", "text/plain")], Some(b"raw body"));
    assert_eq!(item.status, 200, "{}", item.text());
    assert_eq!(item.json(), serde_json::json!({"sku": "abc", "received": "raw body"}));
}

#[test]
fn a_raising_handler_is_a_500_and_others_keep_serving() {
    let stack = Stack::new()
        .file("boom-py/handler.py", "def handler(event):\n    raise RuntimeError('kaboom')\n")
        .file("boom-node/index.js", "exports.handler = () => { throw new TypeError('kapow'); };\n")
        .file("hello-py/handler.py", HELLO_PY)
        .start();
    for (path, detail) in [("/boom-py", "RuntimeError: kaboom"), ("/boom-node", "TypeError: kapow")] {
        let response = stack.get(path);
        assert_eq!(response.status, 500, "{path}: {}", response.text());
        let body = response.json();
        assert_eq!(body["error"], "internal error");
        assert!(body["request_id"].as_str().is_some_and(|id| id.starts_with("req-")), "{body}");
        // dev mode shows the message; the traceback goes to the function's log with the request id.
        assert_eq!(body["detail"], detail);
        let id = body["request_id"].as_str().unwrap_or_default().to_string();
        assert!(wait_until(Duration::from_secs(5), || stack.log("runtime.log").contains(&id)), "request id not in runtime.log");
    }
    let ok = stack.get("/hello-py");
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[test]
fn run_mode_hides_exception_details() {
    let stack = Stack::new().mode("run").file("boom/handler.py", "def handler(event):\n    raise RuntimeError('secret detail')\n").start();
    let response = stack.get("/boom");
    assert_eq!(response.status, 500);
    assert!(!response.text().contains("secret detail"), "{}", response.text());
    assert!(response.json().get("detail").is_none());
}

#[test]
fn a_crashed_worker_is_restarted_on_a_later_request() {
    let mut stack = Stack::new()
        .file("crash/handler.py", "import os\ndef handler(event):\n    if event['query'].get('die'):\n        os._exit(3)\n    return {'pid': os.getpid()}\n")
        .start();
    // A connection nginx had pooled to the dead worker may fail once; nginx logs that itself.
    // Until the supervisor reaps the dead worker, a connect may also be refused; nginx logs both itself.
    stack.allow_log("Connection reset by peer");
    stack.allow_log("Broken pipe");
    stack.allow_log("(111: Connection refused)");
    let first = stack.get("/crash");
    assert_eq!(first.status, 200, "{}", first.text());
    let died = stack.get("/crash?die=1");
    assert_eq!(died.status, 502, "{}", died.text());
    assert_eq!(died.json(), serde_json::json!({"error": "runtime error"}));
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            let r = stack.get("/crash");
            let ok = r.status == 200;
            last = Some(r);
            ok
        }),
        "never recovered: {:?}",
        last.map(|r| r.text())
    );
    let again = stack.get("/crash");
    assert_ne!(again.json()["pid"], first.json()["pid"], "a new worker process serves after the crash");
    assert!(stack.stderr().contains("worker exited unexpectedly"), "the crash is reported");
}

#[test]
fn a_hanging_handler_is_a_504_and_the_function_recovers() {
    let stack = Stack::new()
        .file(
            "slow/handler.py",
            "import time\ndef handler(event):\n    if event['query'].get('hang'):\n        time.sleep(60)\n    return {'ok': True}\n",
        )
        .start();
    let response = stack.get("/slow?hang=1");
    assert_eq!(response.status, 504, "{}", response.text());
    assert_eq!(response.json(), serde_json::json!({"error": "runtime timeout"}));
    // The stuck worker is killed; the next request cold-starts a fresh one.
    assert!(wait_until(Duration::from_secs(10), || stack.get("/slow").status == 200));
}

#[test]
fn sigterm_stops_every_process_within_five_seconds() {
    let mut stack = hello_stack();
    assert_eq!(stack.get("/hello-py").status, 200);
    assert_eq!(stack.get("/hello-node").status, 200);
    let tree = procs::descendants(stack.pid());
    let names: Vec<String> = tree.iter().map(|p| procs::command_line(*p)).collect();
    assert!(names.iter().any(|n| n.contains("nginx")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("worker.py")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("worker.js")), "{names:?}");
    assert!(tree.len() >= 5, "nginx master + 2 workers + 2 function workers: {names:?}");
    let status = stack.signal_and_wait(Signal::SIGTERM, Duration::from_secs(5)).expect("fastfn exits within 5 s");
    assert_eq!(status.code(), Some(0));
    let left: Vec<u32> = tree.into_iter().filter(|p| procs::alive(*p)).collect();
    assert!(left.is_empty(), "left behind: {:?}", left.iter().map(|p| procs::command_line(*p)).collect::<Vec<_>>());
    assert!(!stack.work.path().join("ready.json").exists(), "the ready file is removed at exit");
}

#[test]
fn sigint_stops_like_ctrl_c() {
    let mut stack = hello_stack();
    assert_eq!(stack.get("/hello-node").status, 200);
    let tree = procs::descendants(stack.pid());
    let status = stack.signal_and_wait(Signal::SIGINT, Duration::from_secs(5)).expect("fastfn exits within 5 s");
    assert_eq!(status.code(), Some(0));
    assert!(tree.iter().all(|p| !procs::alive(*p)));
}

#[test]
fn two_instances_run_side_by_side() {
    let one = Stack::new().file("a/handler.py", "def handler(event):\n    return {'instance': 'one'}\n").start();
    let two = Stack::new().file("a/handler.py", "def handler(event):\n    return {'instance': 'two'}\n").start();
    assert_ne!(one.run_dir(), two.run_dir());
    assert_eq!(one.get("/a").json()["instance"], "one");
    assert_eq!(two.get("/a").json()["instance"], "two");
}

#[test]
fn a_second_instance_on_the_same_address_is_refused() {
    let one = Stack::new().file("a/handler.py", "def handler(event):\n    return {}\n").start();
    let output = std::process::Command::new(crate::harness::FASTFN)
        .args(["dev", "--native"])
        .arg(one.functions.path())
        .args(["--listen", &format!("127.0.0.1:{}", one.port), "--run-dir"])
        .arg(one.work.path().join("run"))
        .output()
        .expect("run fastfn");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another fastfn already runs for"), "{stderr}");
    assert_eq!(one.get("/a").status, 200, "the first instance is unharmed");
}

#[test]
fn missing_nginx_is_a_clear_error() {
    let (mut command, _fns, _work, _port) = Stack::new().file("a/handler.py", "").env("FN_OPENRESTY_BIN", "/nonexistent/openresty").prepare();
    let output = command.output().expect("run fastfn");
    assert_eq!(output.status.code(), Some(69), "EX_UNAVAILABLE");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: FN_OPENRESTY_BIN is `/nonexistent/openresty`"), "{stderr}");
    assert!(stderr.contains("apt-get install -y nginx libnginx-mod-http-lua"), "{stderr}");
}

#[test]
fn bad_settings_are_reported_together() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(crate::harness::FASTFN)
        .args(["dev", "--native"])
        .arg(dir.path())
        .env("FN_HOST_PORT", "99999")
        .env("FN_COLD_START_TIMEOUT_MS", "soon")
        .env("FN_NGINX_WORKERS", "many")
        .output()
        .expect("run fastfn");
    assert_eq!(output.status.code(), Some(78), "EX_CONFIG");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in ["FN_HOST_PORT `99999`", "FN_COLD_START_TIMEOUT_MS", "FN_NGINX_WORKERS"] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
}

#[test]
fn a_missing_functions_folder_is_a_clear_error() {
    let output = std::process::Command::new(crate::harness::FASTFN).args(["dev", "--native", "/nonexistent/functions"]).output().expect("run");
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/functions"));
}

#[test]
fn without_native_the_cli_says_this_build_is_native_only() {
    let output = std::process::Command::new(crate::harness::FASTFN).args(["dev", "."]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only native mode") && stderr.contains("--native"), "{stderr}");
}

#[test]
fn version_flag() {
    let output = std::process::Command::new(crate::harness::FASTFN).arg("--version").output().expect("run");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("fastfn "));
}

#[test]
fn run_state_stays_out_of_the_functions_folder() {
    let stack = hello_stack();
    assert_eq!(stack.get("/hello-py").status, 200);
    assert_eq!(stack.get("/hello-node").status, 200);
    let mut names: Vec<String> = Vec::new();
    for entry in walkdir(stack.functions.path()) {
        names.push(entry);
    }
    names.sort();
    assert_eq!(names, vec!["hello-node/index.js".to_string(), "hello-py/handler.py".to_string()]);
    assert!(!stack.run_dir().starts_with(stack.functions.path()));
}

fn walkdir(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_sigkilled_supervisor_leaves_no_process_and_the_next_start_succeeds() {
    let mut stack = hello_stack();
    assert_eq!(stack.get("/hello-py").status, 200);
    assert_eq!(stack.get("/hello-node").status, 200);
    let tree = procs::descendants(stack.pid());
    assert!(tree.len() >= 5, "{tree:?}");
    stack.child.kill().expect("SIGKILL the supervisor");
    let _ = stack.child.wait();
    assert!(
        wait_until(Duration::from_secs(5), || tree.iter().all(|p| !procs::alive(*p))),
        "left behind: {:?}",
        tree.iter().filter(|p| procs::alive(**p)).map(|p| procs::command_line(*p)).collect::<Vec<_>>()
    );
    // The same address and run dir start again at once: the lock died with the process, stale sockets are cleaned.
    let output = std::process::Command::new(crate::harness::FASTFN)
        .args(["dev", "--native"])
        .arg(stack.functions.path())
        .args(["--listen", &format!("127.0.0.1:{}", stack.port), "--run-dir"])
        .arg(stack.work.path().join("run"))
        .arg("--ready-file")
        .arg(stack.work.path().join("ready2.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start again");
    let mut second = output;
    let ready = wait_until(Duration::from_secs(15), || stack.work.path().join("ready2.json").exists());
    let answered = ready && stack.get("/hello-py").status == 200;
    let second_tree = procs::descendants(second.id());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(second.id() as i32), Signal::SIGTERM);
    let _ = second.wait();
    for pid in second_tree {
        if procs::alive(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    assert!(answered, "the next start on the same port did not serve");
}

#[test]
fn a_killed_nginx_master_is_restarted() {
    let mut stack = hello_stack();
    stack.allow_log("the nginx master is gone");
    assert_eq!(stack.get("/hello-py").status, 200);
    let master: i32 = std::fs::read_to_string(stack.run_dir().join("nginx.pid")).expect("pid file").trim().parse().expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), Signal::SIGKILL).expect("kill nginx");
    let started = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || crate::harness::http::request(stack.port, "GET", "/hello-py", &[], None).is_ok_and(|r| r.status == 200)),
        "nginx did not come back: {}",
        stack.stderr()
    );
    eprintln!("nginx back and serving after {:?}", started.elapsed());
    // The orphaned nginx workers may answer before the supervisor has noticed the master's death: wait for that too.
    assert!(wait_until(Duration::from_secs(10), || stack.stderr().contains("nginx exited unexpectedly; restarting it")), "{}", stack.stderr());
}

#[test]
fn sighup_reloads_the_folder() {
    let stack = Stack::new().mode("run").file("a/handler.py", "def handler(event):\n    return {}\n").start();
    assert_eq!(stack.get("/b").status, 404);
    std::fs::create_dir_all(stack.functions.path().join("b")).expect("mkdir");
    std::fs::write(stack.functions.path().join("b/handler.py"), "def handler(event):\n    return {'b': True}\n").expect("write");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(stack.pid() as i32), Signal::SIGHUP).expect("hup");
    assert!(wait_until(Duration::from_secs(10), || stack.get("/b").status == 200), "{}", stack.stderr());
}

#[test]
fn systemd_notifications_follow_the_lifecycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind a test NOTIFY_SOCKET");
    socket.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let mut stack = Stack::new().mode("run").env("NOTIFY_SOCKET", &path.display().to_string()).file("a/handler.py", "def handler(event):\n    return {}\n").start();
    let mut buf = vec![0u8; 4096];
    let mut next = || -> String {
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.contains("READY=1") && ready.contains("STATUS=serving 1 function(s)"), "{ready}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(stack.pid() as i32), Signal::SIGHUP).expect("hup");
    let reloading = next();
    assert!(reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="), "one datagram: {reloading}");
    assert!(next().contains("READY=1"));
    let _ = stack.signal_and_wait(Signal::SIGTERM, Duration::from_secs(10));
    assert!(next().contains("STOPPING=1"));
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let mut stack = Stack::new().file("slow/handler.py", "import time\ndef handler(event):\n    time.sleep(2)\n    return {'done': True}\n").file("slow/fn.config.json", r#"{"timeout_ms": 5000}"#).start();
    assert_eq!(stack.get("/slow").status, 200, "warm");
    let port = stack.port;
    let in_flight = std::thread::spawn(move || crate::harness::http::get(port, "/slow"));
    std::thread::sleep(Duration::from_millis(300));
    let tree = procs::descendants(stack.pid());
    let status = stack.signal_and_wait(Signal::SIGTERM, Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
    let answer = in_flight.join().expect("thread");
    assert_eq!(answer.status, 200, "the request in flight completed: {}", answer.text());
    assert!(tree.iter().all(|p| !procs::alive(*p)), "no process remains");
}
