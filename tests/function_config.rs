//! fn.config.json, the part this build applies: timeouts, body limits, methods, allowed hosts, handler name — and
//! the control-plane endpoint that reads and replaces it.

use serde_json::json;

use crate::harness::Stack;

#[test]
fn config_values_shape_the_routes() {
    let stack = Stack::new()
        .file("slow/handler.py", "import time\ndef handler(event):\n    time.sleep(1)\n    return {'ok': True}\n")
        .file("slow/fn.config.json", r#"{"timeout_ms": 300}"#)
        .file("small/handler.py", "def handler(event):\n    return {'len': len(event.get('body') or '')}\n")
        .file("small/fn.config.json", r#"{"max_body_bytes": 10, "invoke": {"methods": ["POST"]}}"#)
        .file("named/handler.py", "def entry(event):\n    return {'via': 'entry'}\n")
        .file("named/fn.config.json", r#"{"invoke": {"handler": "entry"}}"#)
        .file("hosted/index.js", "exports.handler = () => ({ ok: true });\n")
        .file("hosted/fn.config.json", r#"{"invoke": {"allow_hosts": ["api.example.com", "*.example.org"]}}"#)
        .start();
    let slow = stack.get("/slow");
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(stack.request("POST", "/small", &[], Some(b"0123456789")).status, 200);
    assert_eq!(stack.request("POST", "/small", &[], Some(b"0123456789x")).status, 413);
    let get = stack.get("/small");
    assert_eq!((get.status, get.header("allow")), (405, Some("POST, OPTIONS")));
    assert_eq!(stack.get("/named").json(), json!({"via": "entry"}));

    for (host, status) in [("api.example.com", 200), ("API.example.com:8080", 200), ("a.example.org", 200), ("example.org", 421), ("evil.example", 421)] {
        let r = stack.request("GET", "/hosted", &[("Host", host)], None);
        assert_eq!(r.status, status, "{host}: {}", r.text());
        if status == 421 {
            assert_eq!(r.json(), json!({"error": "host not allowed"}));
        }
    }
    // X-Forwarded-Host counts only from a trusted proxy.
    let spoofed = stack.request("GET", "/hosted", &[("Host", "evil.example"), ("X-Forwarded-Host", "api.example.com")], None);
    assert_eq!(spoofed.status, 421);
}

#[test]
fn x_forwarded_host_counts_from_a_trusted_proxy() {
    let stack = Stack::new()
        .env("FN_TRUSTED_PROXY_CIDRS", "127.0.0.1")
        .file("hosted/index.js", "exports.handler = () => ({ ok: true });\n")
        .file("hosted/fn.config.json", r#"{"invoke": {"allow_hosts": "api.example.com"}}"#)
        .start();
    let r = stack.request("GET", "/hosted", &[("Host", "127.0.0.1"), ("X-Forwarded-Host", "api.example.com")], None);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn an_invalid_config_names_file_and_field_and_the_others_serve() {
    let stack = Stack::new()
        .file("bad/handler.py", "def handler(event):\n    return {}\n")
        .file("bad/fn.config.json", r#"{"timeout_ms": 0, "invoke": {"methods": ["FETCH"]}}"#)
        .file("good/handler.py", "def handler(event):\n    return {'ok': True}\n")
        .start();
    let stderr = stack.stderr();
    assert!(stderr.contains("fn.config.json in") && stderr.contains("timeout_ms must be a positive integer") && stderr.contains("`FETCH`"), "{stderr}");
    assert_eq!(stack.get("/good").status, 200);
    let bad = stack.get("/bad");
    assert_eq!(bad.status, 503);
    assert_eq!(bad.json(), json!({"error": "function misconfigured"}));
    let health = stack.get("/_fn/health").json();
    let listed = health["functions"].as_array().and_then(|fs| fs.iter().find(|f| f["name"] == "bad/handler.py").cloned()).expect("listed");
    assert!(listed["config_error"].as_str().is_some_and(|e| e.contains("timeout_ms")), "{listed}");
    let catalog = stack.get("/_fn/catalog").json();
    assert!(catalog["functions"].as_array().is_some_and(|fs| fs.iter().any(|f| f["config_error"].is_string())));
}

#[test]
fn a_bad_edit_then_reload_keeps_the_last_good_version() {
    let stack = Stack::new()
        .env("FN_CONSOLE_WRITE_ENABLED", "1")
        .file("api/handler.py", "def handler(event):\n    return {'method': event['method']}\n")
        .file("api/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST"]}}"#)
        .file("other/handler.py", "def handler(event):\n    return {}\n")
        .start();
    assert_eq!(stack.request("POST", "/api", &[], Some(b"x")).status, 200);
    std::fs::write(stack.functions.path().join("api/fn.config.json"), r#"{"invoke": {"methods": ["GET", "FETCH"]}}"#).expect("bad edit");
    let reload = stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1")], None);
    assert_eq!(reload.status, 200, "{}", reload.text());
    assert!(reload.text().contains("FETCH"), "the error is shown: {}", reload.text());
    // Give nginx's graceful reload a moment to swap workers, then the old version must still answer POST.
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || {
        stack.get("/_fn/health").json()["functions"].as_array().is_some_and(|fs| fs.iter().any(|f| f["refused_edit"].is_string()))
    }));
    for _ in 0..5 {
        assert_eq!(stack.request("POST", "/api", &[], Some(b"x")).status, 200, "last good version keeps serving");
    }
    assert_eq!(stack.get("/other").status, 200);
}

#[test]
fn function_config_endpoint_reads_validates_and_writes() {
    let stack = Stack::new()
        .env("FN_CONSOLE_WRITE_ENABLED", "1")
        .file("api/handler.py", "def handler(event):\n    return {'method': event['method']}\n")
        .start();
    let read = stack.get("/_fn/function-config?function=api/handler.py");
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["config"], json!({}));
    assert_eq!(read.json()["applied"]["timeout_ms"], 2500);
    assert_eq!(read.json()["applied"]["methods"], json!(["GET"]));

    let put = |body: &str| stack.request("PUT", "/_fn/function-config?function=api/handler.py", &[("X-Fn-Request", "1")], Some(body.as_bytes()));
    let bad = put(r#"{"timeout_ms": "fast", "invoke": {"methods": []}, "nope": 1}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    let error = bad.json()["error"].as_str().unwrap_or_default().to_string();
    for needle in ["timeout_ms", "invoke.methods", "`nope`"] {
        assert!(error.contains(needle), "{needle}: {error}");
    }
    assert!(!stack.functions.path().join("api/fn.config.json").exists(), "nothing written when invalid");

    let good = put(r#"{"timeout_ms": 1000, "invoke": {"methods": ["GET", "POST"]}}"#);
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json()["applied"]["timeout_ms"], 1000);
    assert_eq!(good.json()["applied"]["methods"], json!(["GET", "POST"]));
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || stack.request("POST", "/api", &[], Some(b"x")).status == 200));
    assert_eq!(stack.get("/_fn/function-config?function=nope").status, 404);
}

/// Sends `n` GETs at once and returns their responses.
fn burst(stack: &Stack, path: &str, n: usize) -> Vec<crate::harness::Response> {
    let port = stack.port;
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || crate::harness::http::request(port, "GET", &path, &[], None).expect("answer"))
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("thread")).collect()
}

const SLOW: &str = "import time\ndef handler(event):\n    time.sleep(0.4)\n    return {'ok': True}\n";

#[test]
fn over_the_concurrency_limit_without_a_queue_is_429_with_retry_after() {
    let stack = Stack::new()
        .env("FN_NGINX_WORKERS", "1")
        .file("slow/handler.py", SLOW)
        .file("slow/fn.config.json", r#"{"max_concurrency": 1, "worker_pool": {"max_queue": 0}}"#)
        .start();
    assert_eq!(stack.get("/slow").status, 200, "warm it up");
    let answers = burst(&stack, "/slow", 4);
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(answers.iter().filter(|r| r.status == 200).count(), 1, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(refused.len(), 3);
    assert_eq!(refused[0].json(), json!({"error": "worker pool overflow"}));
    assert_eq!(refused[0].header("retry-after"), Some("1"));
    assert_eq!(stack.get("/slow").status, 200, "the slot is given back");
}

#[test]
fn a_queue_absorbs_a_burst_and_times_out_with_the_configured_status() {
    let stack = Stack::new()
        .env("FN_NGINX_WORKERS", "1")
        .file("slow/handler.py", SLOW)
        .file("slow/fn.config.json", r#"{"max_concurrency": 1, "worker_pool": {"max_queue": 10}}"#)
        .file("tight/handler.py", SLOW)
        .file("tight/fn.config.json", r#"{"worker_pool": {"max_workers": 1, "max_queue": 5, "queue_timeout_ms": 100, "overflow_status": 503}}"#)
        .start();
    assert_eq!(stack.get("/slow").status, 200);
    let answers = burst(&stack, "/slow", 3);
    assert!(answers.iter().all(|r| r.status == 200), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(answers.iter().any(|r| r.header("x-fastfn-queued") == Some("true")));

    assert_eq!(stack.get("/tight").status, 200);
    let answers = burst(&stack, "/tight", 3);
    let timed_out: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(!timed_out.is_empty(), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(timed_out[0].json(), json!({"error": "worker pool queue timeout"}));
}

#[test]
fn a_burst_of_32_is_queued_not_refused_by_default() {
    let stack = Stack::new().file("slow/handler.py", "import time\ndef handler(event):\n    time.sleep(0.05)\n    return {'ok': True}\n").start();
    assert_eq!(stack.get("/slow").status, 200);
    let answers = burst(&stack, "/slow", 32);
    assert!(answers.iter().all(|r| r.status == 200), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
}

#[test]
fn request_ids_and_debug_headers() {
    let stack = Stack::new()
        .file("plain/handler.py", "def handler(event):\n    return {'id': event['id']}\n")
        .file("forger/handler.py", "def handler(event):\n    return {'status': 200, 'headers': {'X-FastFN-Request-Id': 'forged'}, 'body': 'x'}\n")
        .file("debug/index.js", "exports.handler = () => ({ ok: true });\n")
        .file("debug/fn.config.json", r#"{"include_debug_headers": true}"#)
        .start();
    let plain = stack.get("/plain");
    assert_eq!(plain.header("x-fastfn-request-id"), plain.json()["id"].as_str());
    assert!(plain.header("x-fn-runtime").is_none(), "no debug headers unless asked");
    assert_ne!(stack.get("/forger").header("x-fastfn-request-id"), Some("forged"));
    let debug = stack.get("/debug");
    assert_eq!(debug.header("x-fn-runtime"), Some("node"));
    assert_eq!(debug.header("x-fn-function"), Some("debug/index.js"));
    assert!(debug.header("x-fn-latency-ms").is_some_and(|v| v.parse::<u64>().is_ok()));
    assert_eq!(debug.header("x-fn-request-id"), debug.header("x-fastfn-request-id"));
}

fn function_view(stack: &Stack, name: &str) -> serde_json::Value {
    let health = stack.get("/_fn/health").json();
    health["functions"].as_array().and_then(|fs| fs.iter().find(|f| f["name"] == name).cloned()).unwrap_or_default()
}

#[test]
fn warm_functions_start_with_the_stack_and_come_back_by_themselves() {
    let stack = Stack::new()
        .file("warm/handler.py", "import os\ndef handler(event):\n    return {'pid': os.getpid()}\n")
        .file("warm/fn.config.json", r#"{"keep_warm": {"enabled": true}}"#)
        .file("lazy/handler.py", "def handler(event):\n    return {}\n")
        .start();
    let warm = function_view(&stack, "warm/handler.py");
    assert_eq!(warm["state"], "running", "started before ready: {warm}");
    assert_eq!(warm["warm"], true);
    assert_eq!(function_view(&stack, "lazy/handler.py")["state"], "cold");
    let first = stack.get("/warm");
    assert_eq!(first.header("x-fastfn-function-state"), Some("warm"));
    let pid = first.json()["pid"].as_i64().expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).expect("kill the worker");
    assert!(
        crate::harness::wait_until(std::time::Duration::from_secs(5), || {
            let view = function_view(&stack, "warm/handler.py");
            view["state"] == "running" && view["restarts"] == 1
        }),
        "{}",
        function_view(&stack, "warm/handler.py")
    );
    assert_eq!(stack.get("/_fn/health").status, 200);
}

#[test]
fn a_warm_function_that_cannot_start_makes_health_degraded() {
    let mut stack = Stack::new()
        .file("broken/handler.py", "import os\nos._exit(7)\n")
        .file("broken/fn.config.json", r#"{"worker_pool": {"min_warm": 1}}"#)
        .start();
    stack.allow_log("Connection refused");
    let health = stack.get("/_fn/health");
    assert_eq!(health.status, 503, "{}", health.text());
    assert_eq!(health.json()["warm_down"], json!(["broken/handler.py"]));
    assert!(stack.stderr().contains("warm functions not running: broken/handler.py"), "{}", stack.stderr());
}

#[test]
fn idle_workers_stop_and_start_again_on_the_next_request() {
    let stack = Stack::new()
        .file("idle/handler.py", "import os\ndef handler(event):\n    return {'pid': os.getpid()}\n")
        .file("idle/fn.config.json", r#"{"worker_pool": {"idle_ttl_seconds": 1, "max_workers": 1}}"#)
        .start();
    let first = stack.get("/idle").json()["pid"].clone();
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(6), || function_view(&stack, "idle/handler.py")["state"] == "cold"));
    assert!(stack.stderr().contains("stopped after its idle time"));
    let again = stack.get("/idle");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("x-fastfn-function-state"), Some("cold"));
    assert_ne!(again.json()["pid"], first);
    assert_eq!(function_view(&stack, "idle/handler.py")["restarts"], 1);
}
