//! Issue 9: supervision and hot reload under load. Crash loops, rapid reloads and the write-to-new-answer latency
//! of hot reload, against the real stack. Bounds are generous; the measured figures are printed (`--nocapture`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{http, wait_until, Stack};

const STEADY: &str = "def handler(event):\n    return {'steady': True}\n";

/// Requests `path` in a loop on its own thread until stopped; counts the answers that are not 2xx.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(port: u16, path: &'static str) -> Load {
        let (stop, sent, bad) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, n, b) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&bad));
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                match http::request(port, "GET", path, &[], None) {
                    Ok(r) if (200..300).contains(&r.status) => {}
                    Ok(r) => {
                        b.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{} {}", r.status, r.text()));
                    }
                    Err(e) => {
                        b.fetch_add(1, Ordering::Relaxed);
                        failures.push(e.to_string());
                    }
                }
            }
            failures
        });
        Load { stop, sent, bad, thread: Some(thread) }
    }

    /// Stops the load; returns (requests sent, failures).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.take().map(|t| t.join().expect("load thread")).unwrap_or_default();
        assert_eq!(failures.len() as u64, self.bad.load(Ordering::Relaxed));
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

fn function_view(health: &Value, name: &str) -> Value {
    health["functions"].as_array().and_then(|fs| fs.iter().find(|f| f["name"] == name)).cloned().unwrap_or(Value::Null)
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_crash_loop_is_marked_failed_in_health_and_recovers_after_a_fix() {
    let stack = Stack::new()
        .file("steady/handler.py", STEADY)
        // Exits while loading, so every start of its worker fails.
        .file("boom/handler.py", "import os\nos._exit(7)\n")
        .file("boom/fn.config.json", r#"{"keep_warm": {"enabled": true}}"#)
        .start();
    let load = Load::start(stack.port, "/steady");
    let mut health = Value::Null;
    let failed = wait_until(Duration::from_secs(20), || {
        health = stack.get("/_fn/health").json();
        function_view(&health, "boom/handler.py")["state"] == "failed"
    });
    assert!(failed, "never marked failed: {health}");
    let boom = function_view(&health, "boom/handler.py");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["failed"], serde_json::json!(["boom/handler.py"]));
    assert_eq!(boom["last_exit"], serde_json::json!({"kind": "exit", "value": 7}), "{boom}");
    assert!(boom["restarts"].as_u64().unwrap_or(0) >= 4, "{boom}");
    assert_eq!(stack.get("/_fn/health").status, 503, "health is 503 while a function is in a crash loop");
    let request = stack.get("/boom");
    assert_eq!(request.status, 503, "{}", request.text());
    // No log flood: entering the crash loop is said once; its later retries are debug lines.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stack.stderr().matches("crash loop").count(), 1, "{}", stack.stderr());

    // The fix is picked up by hot reload; the function gets a fresh start at once.
    std::fs::write(stack.functions.path().join("boom/handler.py"), "def handler(event):\n    return {'fixed': True}\n").expect("fix");
    let recovered = wait_until(Duration::from_secs(10), || stack.get("/_fn/health").json()["status"] == "ok");
    assert!(recovered, "{}", stack.stderr());
    assert_eq!(stack.get("/boom").json(), serde_json::json!({"fixed": true}));
    let (sent, failures) = load.finish();
    assert!(failures.is_empty(), "the steady function failed {} of {sent} requests: {:?}", failures.len(), &failures[..failures.len().min(5)]);
}

#[test]
fn a_hundred_rapid_reloads_under_load_serve_no_5xx_and_end_with_the_disk() {
    let stack = Stack::new().mode("run").file("steady/handler.py", STEADY).start();
    let load = Load::start(stack.port, "/steady");
    let root = stack.functions.path().to_path_buf();
    let pid = nix::unistd::Pid::from_raw(stack.pid() as i32);
    let started = Instant::now();
    for i in 0..100u32 {
        // Churn: each round adds a function and removes the one added three rounds before.
        std::fs::create_dir_all(root.join(format!("n{i}"))).expect("mkdir");
        std::fs::write(root.join(format!("n{i}/handler.py")), format!("def handler(event):\n    return {{'n': {i}}}\n")).expect("write");
        if i >= 3 {
            std::fs::remove_dir_all(root.join(format!("n{}", i - 3))).expect("remove");
        }
        nix::sys::signal::kill(pid, Signal::SIGHUP).expect("hup");
        std::thread::sleep(Duration::from_millis(u64::from(i * 7 % 26)));
    }
    let elapsed = started.elapsed();
    let expected: Vec<String> = vec!["/n97".into(), "/n98".into(), "/n99".into(), "/steady".into()];
    let token_free_catalog = || -> Vec<String> {
        // Run mode without a token: read the catalog through the answers instead of /_fn/catalog.
        let mut found: Vec<String> = (0..100).map(|i| format!("/n{i}")).filter(|p| stack.get(p).status == 200).collect();
        if stack.get("/steady").status == 200 {
            found.push("/steady".into());
        }
        found
    };
    let mut last = Vec::new();
    let settled = wait_until(Duration::from_secs(20), || {
        last = token_free_catalog();
        last == expected
    });
    let (sent, failures) = load.finish();
    let reloads = stack.stderr().matches("reloaded on SIGHUP").count();
    eprintln!("100 SIGHUPs in {} ms ({reloads} reloads: signals that arrive during a reload coalesce); {sent} requests to the steady function", elapsed.as_millis());
    assert!(settled, "the served functions differ from the disk: {last:?}");
    assert_eq!(stack.get("/n99").json(), serde_json::json!({"n": 99}));
    let server_errors: Vec<&String> = failures.iter().filter(|f| f.starts_with('5') || !f.chars().next().is_some_and(|c| c.is_ascii_digit())).collect();
    assert!(server_errors.is_empty(), "{} of {sent} failed: {:?}", server_errors.len(), &server_errors[..server_errors.len().min(5)]);
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn hot_reload_under_load_reports_write_to_answer_latency() {
    let mut stack = Stack::new().file("steady/handler.py", STEADY).start();
    // While an edited function's worker restarts, a request may find its socket before the new worker listens; nginx
    // logs that connect at [error] and the gateway then asks the supervisor, which waits for the new worker.
    stack.allow_log("(111: Connection refused)");
    // A request already written to an edited function's old worker when the reload stops it is reset by the kernel;
    // nginx logs the reset at [error] and the gateway retries the GET on the new worker (the prober sees its answer).
    stack.allow_log("(104: Connection reset by peer)");
    let load = Load::start(stack.port, "/steady");
    let root = stack.functions.path().to_path_buf();
    let timed = |what: &str, change: &dyn Fn(), answered: &dyn Fn() -> bool| -> u128 {
        let start = Instant::now();
        change();
        assert!(wait_until(Duration::from_secs(10), answered), "{what} was never served: {}", stack.stderr());
        start.elapsed().as_millis()
    };
    let mut added = Vec::new();
    let mut edited = Vec::new();
    let mut removed = Vec::new();
    for round in 0..5u32 {
        let dir = root.join(format!("live{round}"));
        let path = format!("/live{round}");
        added.push(timed(
            "an added function",
            &|| {
                std::fs::create_dir_all(&dir).expect("mkdir");
                std::fs::write(dir.join("handler.py"), "def handler(event):\n    return {'v': 0}\n").expect("add");
            },
            &|| stack.get(&path).status == 200,
        ));
        for v in 1..=3u32 {
            edited.push(timed(
                "an edit",
                &|| std::fs::write(dir.join("handler.py"), format!("def handler(event):\n    return {{'v': {v}}}\n")).expect("edit"),
                &|| stack.get(&path).json()["v"] == v,
            ));
        }
        removed.push(timed("a removal", &|| std::fs::remove_dir_all(&dir).expect("remove"), &|| stack.get(&path).status == 404));
    }
    let (sent, failures) = load.finish();
    for (what, figures) in [("add", &mut added), ("edit", &mut edited), ("remove", &mut removed)] {
        figures.sort_unstable();
        eprintln!(
            "hot reload {what}: write-to-new-answer ms min {} p50 {} p90 {} max {} (n={})",
            figures[0],
            percentile(figures, 0.5),
            percentile(figures, 0.9),
            figures[figures.len() - 1],
            figures.len()
        );
    }
    eprintln!("steady function: {sent} requests during the reloads, {} not 2xx", failures.len());
    assert!(failures.is_empty(), "the unchanged function failed: {:?}", &failures[..failures.len().min(5)]);
}

#[test]
fn killed_worker_and_nginx_master_come_back_under_load() {
    let mut stack = Stack::new()
        .file("steady/handler.py", STEADY)
        .file("steady/fn.config.json", r#"{"worker_pool": {"max_workers": 1}}"#)
        .file("victim/handler.py", "import os\ndef handler(event):\n    return {'pid': os.getpid()}\n")
        .file("victim/fn.config.json", r#"{"keep_warm": {"enabled": true}, "worker_pool": {"max_workers": 1}}"#)
        .start();
    stack.allow_log("the nginx master is gone");
    assert_eq!(stack.get("/steady").status, 200, "warm the steady worker");
    let victim = stack.get("/victim").json()["pid"].as_i64().expect("victim pid");
    let load = Load::start(stack.port, "/steady");
    std::thread::sleep(Duration::from_millis(300));

    // A warm worker comes back by itself (no request needed), after the first backoff delay.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), Signal::SIGKILL).expect("kill the worker");
    let killed = Instant::now();
    let back = wait_until(Duration::from_secs(5), || {
        let view = function_view(&stack.get("/_fn/health").json(), "victim/handler.py");
        view["state"] == "running" && view["pid"].as_i64().is_some_and(|p| p != victim)
    });
    let worker_back = killed.elapsed();
    assert!(back, "the warm worker was not restarted: {}", stack.stderr());
    let (sent, failures) = load.finish();
    assert!(failures.is_empty(), "the steady function failed during the worker kill: {failures:?}");

    let master: i32 = std::fs::read_to_string(stack.run_dir().join("nginx.pid")).expect("pid file").trim().parse().expect("pid");
    let load = Load::start(stack.port, "/steady");
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), Signal::SIGKILL).expect("kill nginx");
    let killed = Instant::now();
    // The orphaned nginx workers may answer for a moment; "back" means a new master that serves.
    let served = wait_until(Duration::from_secs(5), || {
        let new_master = std::fs::read_to_string(stack.run_dir().join("nginx.pid")).ok().and_then(|p| p.trim().parse::<i32>().ok());
        new_master.is_some_and(|p| p != master) && http::request(stack.port, "GET", "/victim", &[], None).is_ok_and(|r| r.status == 200)
    });
    let nginx_back = killed.elapsed();
    let (during_nginx, lost) = load.finish();
    assert!(served, "nginx did not come back: {}", stack.stderr());
    let nginx = stack.get("/_fn/health").json()["nginx"].clone();
    assert_eq!(nginx["restarts"], 1, "{nginx}");
    assert_eq!(nginx["last_exit"], serde_json::json!({"kind": "signal", "value": 9}), "{nginx}");
    eprintln!(
        "worker SIGKILL: warm worker running again after {} ms ({sent} steady requests, 0 failed); nginx master SIGKILL: serving again after {} ms ({} of {during_nginx} steady requests failed meanwhile)",
        worker_back.as_millis(),
        nginx_back.as_millis(),
        lost.len()
    );
}

#[test]
fn logs_rotate_by_size_per_process_and_for_nginx() {
    let stack = Stack::new()
        .env("FN_LOG_MAX_BYTES", "4096")
        .file("chatty/handler.py", "def handler(event):\n    for i in range(40):\n        print('chatty line', i, 'x' * 60)\n    return {}\n")
        .file("quiet/handler.py", "def handler(event):\n    print('quiet says hi')\n    return {}\n")
        .start();
    for _ in 0..10 {
        assert_eq!(stack.get("/chatty").status, 200);
    }
    assert_eq!(stack.get("/quiet").status, 200);
    let logs = stack.run_dir().join("logs");
    let processes = logs.join("processes");
    let own = processes.join("fn_chatty_handler.py.log");
    assert!(wait_until(Duration::from_secs(5), || processes.join("fn_chatty_handler.py.log.3").exists()), "chatty's log never rotated");
    assert!(!processes.join("fn_chatty_handler.py.log.4").exists(), "only three rotations are kept");
    for path in [own.clone(), processes.join("fn_chatty_handler.py.log.1"), logs.join("runtime.log")] {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size <= 4096, "{} is {size} bytes", path.display());
    }
    let quiet_log = processes.join("fn_quiet_handler.py.log");
    // Output is drained asynchronously: the line lands shortly after the answer.
    assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&quiet_log).is_ok_and(|t| t.contains("quiet says hi"))), "quiet's own log");
    let quiet = std::fs::read_to_string(&quiet_log).unwrap_or_default();
    assert!(!quiet.contains("chatty"), "each process has its own file: {quiet}");

    // nginx writes its own access log: past the limit the supervisor shifts it and has nginx reopen it.
    for _ in 0..80 {
        assert_eq!(stack.get("/quiet").status, 200);
    }
    let access = logs.join("access.log");
    assert!(wait_until(Duration::from_secs(8), || logs.join("access.log.1").exists()), "access.log never rotated");
    let reopened = wait_until(Duration::from_secs(5), || {
        let _ = stack.get("/quiet");
        std::fs::read_to_string(&access).is_ok_and(|t| t.contains("/quiet"))
    });
    assert!(reopened, "nginx did not reopen its access log");
}
