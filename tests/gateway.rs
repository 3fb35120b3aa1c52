//! The gateway's error paths with the real stack: workers that break the wire protocol, requests nginx itself
//! rejects, and bodies over the limit. Every answer is JSON and nothing crashes.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{http, Stack};

const EXEC_ALLOWED: &str = r#"{"sandbox": {"exec": true}}"#;

/// Copies the hostile interpreter into a folder every user can reach (workers may run as another user).
fn hostile_interpreter() -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new().prefix("ffn-hostile-").tempdir_in("/tmp").expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let path = dir.path().join("python3");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hostile_interpreter.py"), &path).expect("copy");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn broken_worker_replies_are_502_json_and_the_gateway_survives() {
    let (_keep, interpreter) = hostile_interpreter();
    let modes = ["badlen", "zerolen", "notjson", "array", "badstatus", "badheaders", "badb64", "close", "truncated", "fine"];
    let mut builder = Stack::new().env("FN_PYTHON_BIN", &interpreter);
    for mode in modes {
        // The stand-in interpreter is a script: running its `#!` interpreter needs the exec permission.
        builder = builder.file(&format!("{mode}/handler.py"), "").file(&format!("{mode}/fn.config.json"), EXEC_ALLOWED);
    }
    let stack = builder.start();
    for (mode, error) in [
        ("badlen", "invalid runtime response"),
        ("zerolen", "invalid runtime response"),
        ("notjson", "invalid runtime response"),
        ("array", "invalid runtime response"),
        ("badstatus", "invalid runtime response"),
        ("badheaders", "invalid runtime response"),
        ("badb64", "invalid runtime response"),
        ("close", "runtime error"),
        ("truncated", "runtime error"),
    ] {
        let response = stack.get(&format!("/{mode}"));
        assert_eq!(response.status, 502, "{mode}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("application/json"), "{mode}");
        assert_eq!(response.json(), serde_json::json!({"error": error}), "{mode}");
    }
    let fine = stack.get("/fine");
    assert_eq!((fine.status, fine.text().as_str()), (200, "ok"));
}

#[test]
fn worker_headers_are_filtered() {
    let (_keep, interpreter) = hostile_interpreter();
    let stack = Stack::new().env("FN_PYTHON_BIN", &interpreter).file("headers/handler.py", "").file("headers/fn.config.json", EXEC_ALLOWED).start();
    let response = stack.get("/headers");
    assert_eq!(response.status, 201);
    assert_eq!(response.text(), "made");
    assert_eq!(response.header("x-ok"), Some("yes"));
    let multi: Vec<&str> = response.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("x-multi")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(multi, vec!["a", "b"]);
    assert!(response.header("injected").is_none(), "CR/LF in a value must not split headers");
    assert!(response.header("x-bad").is_none());
    assert_eq!(response.header("content-length"), Some("4"), "the gateway, not the worker, sets the length");
}

#[test]
fn nginx_own_errors_are_json() {
    let stack = Stack::new().file("a/handler.py", "def handler(event):\n    return {}\n").start();
    let bad_line = http::send_raw(stack.port, b"NOT A REQUEST\r\n\r\n").expect("answer");
    assert_eq!(bad_line.status, 400);
    assert_eq!(bad_line.json(), serde_json::json!({"error": "bad request"}));

    let huge = format!("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(64 * 1024));
    let too_big = http::send_raw(stack.port, huge.as_bytes()).expect("answer");
    assert_eq!(too_big.status, 431);
    assert_eq!(too_big.json()["error"], "request header too large");

    let long_uri = http::get(stack.port, &format!("/{}", "x".repeat(20 * 1024)));
    assert!(matches!(long_uri.status, 414 | 431), "{}", long_uri.status);
    assert_eq!(long_uri.header("content-type"), Some("application/json"));
}

#[test]
fn bodies_over_the_limit_are_413_before_the_worker_is_contacted() {
    let mut stack = Stack::new()
        .file("post.echo.py", "def handler(event):\n    print('handler called', flush=True)\n    return {'len': len(event.get('body') or '')}\n")
        .start();
    stack.allow_log("client intended to send too large");
    let ok = stack.request("POST", "/echo", &[], Some(&vec![b'x'; 1000]));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["len"], 1000);
    let big = vec![b'x'; 1024 * 1024 + 1];
    let refused = stack.request("POST", "/echo", &[], Some(&big));
    assert_eq!(refused.status, 413);
    assert_eq!(refused.json(), serde_json::json!({"error": "payload too large"}));
    // Chunked, so nginx cannot know the size up front.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(format!("{:x}\r\n", 512 * 1024).as_bytes());
        raw.extend(std::iter::repeat_n(b'y', 512 * 1024));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let chunked = http::send_raw(stack.port, &raw).expect("answer");
    assert_eq!(chunked.status, 413);
    assert_eq!(chunked.json()["error"], "payload too large");
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || stack.log("runtime.log").contains("handler called")));
    assert_eq!(stack.log("runtime.log").matches("handler called").count(), 1, "only the small body reached the handler");
}

#[test]
fn events_carry_the_request() {
    let stack = Stack::new()
        .file("post.inspect.[...rest].py", "def handler(event):\n    return {'event': event}\n")
        .start();
    let response = stack.request("POST", "/inspect/a/b%20c?x=1&x=2&flag", &[("X-Custom", "v"), ("Cookie", "sid=abc; other=1")], Some(b"{\"k\":1}"));
    assert_eq!(response.status, 200, "{}", response.text());
    let event = &response.json()["event"];
    assert_eq!(event["method"], "POST");
    assert_eq!(event["path"], "/inspect/a/b c");
    assert_eq!(event["raw_path"], "/inspect/a/b%20c?x=1&x=2&flag");
    assert_eq!(event["query"], serde_json::json!({"x": ["1", "2"], "flag": true}));
    assert_eq!(event["params"], serde_json::json!({"rest": "a/b c"}));
    assert_eq!(event["path_params"], event["params"]);
    assert_eq!(event["headers"]["x-custom"], "v");
    assert_eq!(event["body"], "{\"k\":1}", "the body is passed raw, never parsed");
    assert_eq!(event["session"]["id"], "abc");
    assert_eq!(event["client"]["ip"], "127.0.0.1");
    assert_eq!(event["context"]["function_name"], "post.inspect.[...rest].py");
    assert_eq!(event["context"]["runtime"], "python");
    assert_eq!(event["context"]["timeout_ms"], 2500);
    assert_eq!(event["context"]["request_id"], event["id"]);
    assert!(event.get("env").is_none() && event["context"].get("user").is_none());

    let no_body = stack.request("POST", "/inspect/x", &[], None);
    assert!(no_body.json()["event"].get("body").is_none(), "no body key without a body");
}

#[test]
fn a_query_cannot_inject_context() {
    let stack = Stack::new().file("ctx.py", "def handler(event):\n    return {'context': event['context'], 'query': event['query']}\n").start();
    // upstream decoded `__fnctx` (base64 JSON) from the query into context.user; here it is just a query arg.
    let response = stack.get("/ctx?__fnctx=eyJ1c2VyIjoiYWRtaW4ifQ==");
    let body = response.json();
    assert!(body["context"].get("user").is_none(), "{body}");
    assert_eq!(body["query"]["__fnctx"], "eyJ1c2VyIjoiYWRtaW4ifQ==");
}

#[test]
fn conflicting_routes_answer_409_and_the_rest_serve() {
    let stack = Stack::new()
        .file("get.twice.js", "exports.handler = () => ({ from: 'js' });\n")
        .file("get.twice.py", "def handler(event):\n    return {'from': 'py'}\n")
        .file("once.py", "def handler(event):\n    return {'ok': True}\n")
        .start();
    let conflict = stack.get("/twice");
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json(), serde_json::json!({"error": "ambiguous function"}));
    assert_eq!(stack.get("/once").status, 200);
    assert!(stack.stderr().contains("route `/twice` is claimed by both"), "{}", stack.stderr());
}

#[test]
fn successful_traffic_and_cold_starts_leave_no_errors_in_the_gateway_log() {
    let stack = Stack::new()
        .file("a/handler.py", "def handler(event):\n    return {}\n")
        .file("b/index.js", "exports.handler = () => ({});\n")
        .start();
    for _ in 0..20 {
        assert_eq!(stack.get("/a").status, 200);
        assert_eq!(stack.get("/b").status, 200);
    }
    // Drop checks error.log: no [error], [crit], [alert], [emerg] or NYI lines.
}
