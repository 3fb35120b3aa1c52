//! Issue 7: every runtime over real HTTP — hello, params, JSON body echo, binary response, custom status and
//! headers, and exceptions — plus Go builds (errors and fixes) and in-process Lua.

use serde_json::json;

use crate::harness::{wait_until, Stack};

const GO_CONTRACT: &str = r#"package main

import (
	"encoding/json"
	"fmt"
)

func Handler(event map[string]any) map[string]any {
	query, _ := event["query"].(map[string]any)
	switch query["case"] {
	case "echo":
		var body any
		text, _ := event["body"].(string)
		if err := json.Unmarshal([]byte(text), &body); err != nil {
			return map[string]any{"status": 400, "body": map[string]string{"error": err.Error()}}
		}
		return map[string]any{"echo": body}
	case "binary":
		return map[string]any{"status": 200, "headers": map[string]any{"Content-Type": "application/octet-stream"}, "body": []byte{0, 1, 2, 255}}
	case "custom":
		return map[string]any{"status": 201, "headers": map[string]any{"X-Custom": "yes", "Content-Type": "text/plain"}, "body": "made"}
	case "panic":
		panic(fmt.Sprintf("boom %v", query["case"]))
	}
	fmt.Println("printed to stdout, never into the protocol")
	return map[string]any{"hello": "go"}
}
"#;

#[test]
fn go_handlers_build_and_honour_the_contract() {
    let stack = Stack::new().file("go/contract/handler.go", GO_CONTRACT).start();
    let hello = stack.get("/contract");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.json(), json!({"hello": "go"}));
    let echo = stack.request("POST", "/contract?case=echo", &[("Content-Type", "application/json")], Some(br#"{"a":[1,2]}"#));
    assert_eq!(echo.status, 405, "POST is not among the default methods: {}", echo.text());
    let binary = stack.get("/contract?case=binary");
    assert_eq!((binary.status, binary.body.clone()), (200, vec![0u8, 1, 2, 255]));
    let custom = stack.get("/contract?case=custom");
    assert_eq!((custom.status, custom.text().as_str(), custom.header("x-custom")), (201, "made", Some("yes")));
    let panic = stack.get("/contract?case=panic");
    assert_eq!(panic.status, 500);
    assert_eq!(panic.json()["error"], "internal error");
    assert!(panic.json()["detail"].as_str().is_some_and(|d| d.contains("boom")), "{}", panic.text());
    assert_eq!(stack.get("/contract").status, 200, "a panic does not kill the worker");
    assert!(wait_until(std::time::Duration::from_secs(5), || stack.log("runtime.log").contains("printed to stdout")));
}

#[test]
fn go_params_and_json_bodies() {
    let stack = Stack::new()
        .file(
            "go/items/handler.go",
            "package main\n\nimport \"encoding/json\"\n\nfunc Handler(event map[string]any) map[string]any {\n\tvar body any\n\ttext, _ := event[\"body\"].(string)\n\tjson.Unmarshal([]byte(text), &body)\n\treturn map[string]any{\"wildcard\": event[\"wildcard\"], \"echo\": body}\n}\n",
        )
        .file("go/items/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST"]}}"#)
        .start();
    let r = stack.request("POST", "/items/a/b", &[], Some(br#"{"x":1}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"wildcard": "a/b", "echo": {"x": 1}}), "params are also top-level keys, bodies JSON not Python repr");
}

#[test]
fn a_go_build_error_is_a_500_with_the_message_and_a_fix_serves() {
    let stack = Stack::new()
        .env("FN_CONSOLE_WRITE_ENABLED", "1")
        .file("broken/handler.go", "package main\n\nfunc Handler(event map[string]any) map[string]any {\n\treturn nope\n}\n")
        .file("fine/handler.py", "def handler(event):\n    return {'ok': True}\n")
        .start();
    let broken = stack.get("/broken");
    assert_eq!(broken.status, 500);
    assert_eq!(broken.json()["error"], "function build failed");
    assert!(broken.json()["detail"].as_str().is_some_and(|d| d.contains("undefined: nope")), "{}", broken.text());
    assert_eq!(stack.get("/fine").status, 200, "other functions are not affected");
    std::fs::write(
        stack.functions.path().join("broken/handler.go"),
        "package main\n\nfunc Handler(event map[string]any) map[string]any {\n\treturn map[string]any{\"fixed\": true}\n}\n",
    )
    .expect("fix");
    assert_eq!(stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1")], None).status, 200);
    assert!(wait_until(std::time::Duration::from_secs(10), || stack.get("/broken").status == 200));
    assert_eq!(stack.get("/broken").json(), json!({"fixed": true}));
}

#[test]
fn run_mode_hides_the_compiler_message() {
    let stack = Stack::new().mode("run").file("broken/handler.go", "package main\nfunc Handler(e map[string]any) map[string]any { return nope }\n").start();
    let broken = stack.get("/broken");
    assert_eq!(broken.status, 500);
    assert_eq!(broken.json(), json!({"error": "function build failed"}));
}

const LUA_CONTRACT: &str = r#"
return function(event, params)
    local case = event.query.case
    if case == "echo" then
        return { echo = cjson.decode(event.body), id = params.id }
    elseif case == "binary" then
        return { status = 200, headers = { ["Content-Type"] = "application/octet-stream" }, is_base64 = true, body_base64 = "AAEC/w==" }
    elseif case == "custom" then
        return { status = 201, headers = { ["X-Custom"] = "yes", ["Content-Type"] = "text/plain" }, body = "made" }
    elseif case == "error" then
        error("boom")
    elseif case == "loop" then
        while true do end
    elseif case == "escape" then
        return { io = type(io), os_execute = type(os.execute), ngx = type(ngx), load = type(load) }
    end
    return { hello = "lua", params = params }
end
"#;

#[test]
fn lua_handlers_run_in_the_gateway_and_honour_the_contract() {
    let stack = Stack::new()
        .file("things/[id]/handler.lua", LUA_CONTRACT)
        .file("things/[id]/fn.config.json", r#"{"timeout_ms": 500, "invoke": {"methods": ["GET", "POST"]}}"#)
        .file("other/handler.py", "def handler(event):\n    return {'ok': True}\n")
        .start();
    let hello = stack.get("/things/7");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.json(), json!({"hello": "lua", "params": {"id": "7"}}));
    let echo = stack.request("POST", "/things/8?case=echo", &[], Some(br#"{"a":[1,2]}"#));
    assert_eq!(echo.json(), json!({"echo": {"a": [1, 2]}, "id": "8"}));
    let binary = stack.get("/things/1?case=binary");
    assert_eq!((binary.status, binary.body.clone()), (200, vec![0u8, 1, 2, 255]));
    let custom = stack.get("/things/1?case=custom");
    assert_eq!((custom.status, custom.text().as_str(), custom.header("x-custom")), (201, "made", Some("yes")));
    let error = stack.get("/things/1?case=error");
    assert_eq!(error.status, 500);
    assert_eq!(error.json()["error"], "internal error");
    assert_eq!(stack.get("/things/1?case=escape").json(), json!({"io": "nil", "os_execute": "nil", "ngx": "nil", "load": "nil"}));
    // A stuck handler is stopped at its timeout while other requests keep being served.
    let port = stack.port;
    let stuck = std::thread::spawn(move || crate::harness::http::get(port, "/things/1?case=loop"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(stack.get("/other").status, 200, "served while the loop runs");
    let stuck = stuck.join().expect("thread");
    assert_eq!(stuck.status, 504, "{}", stuck.text());
    assert_eq!(stack.get("/things/2").status, 200, "the nginx worker still serves");
}

const PHP_CONTRACT: &str = r#"<?php
function handler($event, $params) {
    switch ($event["query"]["case"] ?? "") {
        case "echo":
            return ["echo" => json_decode($event["body"], true), "id" => $params["id"]];
        case "binary":
            return ["status" => 200, "headers" => ["Content-Type" => "application/octet-stream"], "is_base64" => true, "body_base64" => base64_encode("\x00\x01\x02\xff")];
        case "custom":
            return ["status" => 201, "headers" => ["X-Custom" => "yes", "Content-Type" => "text/plain"], "body" => "made"];
        case "error":
            throw new RuntimeException("boom");
        case "echoed":
            echo "from echo";
            return null;
    }
    return ["hello" => "php", "params" => $params];
}
"#;

#[test]
fn php_handlers_honour_the_contract() {
    let stack = Stack::new()
        .file("things/[id]/handler.php", PHP_CONTRACT)
        .file("things/[id]/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST"]}}"#)
        .start();
    let hello = stack.get("/things/7");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.json(), json!({"hello": "php", "params": {"id": "7"}}));
    let echo = stack.request("POST", "/things/8?case=echo", &[], Some(br#"{"a":[1,2]}"#));
    assert_eq!(echo.json(), json!({"echo": {"a": [1, 2]}, "id": "8"}));
    let binary = stack.get("/things/1?case=binary");
    assert_eq!((binary.status, binary.body.clone()), (200, vec![0u8, 1, 2, 255]));
    let custom = stack.get("/things/1?case=custom");
    assert_eq!((custom.status, custom.text().as_str(), custom.header("x-custom")), (201, "made", Some("yes")));
    let error = stack.get("/things/1?case=error");
    assert_eq!(error.status, 500);
    assert_eq!(error.json()["error"], "internal error");
    assert!(error.json()["detail"].as_str().is_some_and(|d| d.contains("boom")));
    assert_eq!(stack.get("/things/1?case=echoed").text(), "from echo");
}

#[test]
fn every_example_answers() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut builder = Stack::new();
    for entry in walk(&examples) {
        let rel = entry.strip_prefix(&examples).expect("inside").display().to_string();
        builder = builder.file(&rel, &std::fs::read_to_string(&entry).expect("read example"));
    }
    let stack = builder.start();
    for (path, runtime) in [("/hello-py", "python"), ("/hello-node", "node"), ("/hello-php", "php"), ("/hello-go", "go"), ("/hello-lua", "lua")] {
        let r = stack.get(&format!("{path}?name=you"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json(), json!({"hello": "you", "runtime": runtime}), "{path}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn killing_one_worker_of_a_pool_fails_no_later_request() {
    let mut stack = Stack::new()
        .file("pooled/handler.py", "import os\ndef handler(event):\n    return {'pid': os.getpid()}\n")
        .file("pooled/fn.config.json", r#"{"timeout_ms": 6000, "worker_pool": {"max_workers": 2}}"#)
        .env("FN_NGINX_WORKERS", "1")
        .start();
    // Between the kill and the supervisor's cleanup, nginx may log a failed connect to the dead worker's socket
    // itself (the request is then served by the other worker).
    stack.allow_log("(2: No such file or directory)");
    stack.allow_log("(111: Connection refused)");
    stack.allow_log("Connection reset by peer");
    let mut pids = std::collections::BTreeSet::new();
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        pids.insert(stack.get("/pooled").json()["pid"].as_i64().unwrap_or(0));
        pids.len() >= 2
    }), "both workers of the pool serve: {pids:?}");
    let victim = *pids.iter().next().expect("a pid");
    let port = stack.port;
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&killed);
    let stream = std::thread::spawn(move || {
        // A steady stream until 200 requests have been sent after the kill.
        let mut after_kill = Vec::new();
        while after_kill.len() < 200 {
            let sent_after_kill = flag.load(std::sync::atomic::Ordering::SeqCst);
            let status = crate::harness::http::get(port, "/pooled").status;
            if sent_after_kill {
                after_kill.push(status);
            }
        }
        after_kill
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), nix::sys::signal::Signal::SIGKILL).expect("kill one worker");
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    let after = stream.join().expect("stream");
    assert!(after.len() > 20, "requests kept flowing after the kill");
    assert!(after.iter().all(|s| *s == 200), "a request sent after the kill failed: {after:?}");
}

const PY_CONTRACT: &str = r#"import json
def handler(event, id=None):
    case = event['query'].get('case')
    if case == 'echo':
        return {'echo': json.loads(event['body']), 'id': id}
    if case == 'binary':
        return {'status': 200, 'headers': {'Content-Type': 'application/octet-stream'}, 'body': bytes([0, 1, 2, 255])}
    if case == 'custom':
        return {'status': 201, 'headers': {'X-Custom': 'yes', 'Content-Type': 'text/plain'}, 'body': 'made'}
    if case == 'error':
        raise ValueError('boom')
    return {'hello': 'python', 'id': id}
"#;

const NODE_CONTRACT: &str = r#"exports.handler = async (event, params) => {
  switch (event.query.case) {
    case 'echo': return { echo: JSON.parse(event.body), id: params.id };
    case 'binary': return { status: 200, headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.from([0, 1, 2, 255]) };
    case 'custom': return { status: 201, headers: { 'X-Custom': 'yes', 'Content-Type': 'text/plain' }, body: 'made' };
    case 'error': throw new Error('boom');
    default: return { hello: 'node', id: params.id };
  }
};
"#;

#[test]
fn python_and_node_honour_the_contract_over_http() {
    let stack = Stack::new()
        .file("py/[id]/handler.py", PY_CONTRACT)
        .file("py/[id]/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST"]}}"#)
        .file("js/[id]/index.js", NODE_CONTRACT)
        .file("js/[id]/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST"]}}"#)
        .start();
    for (prefix, runtime) in [("/py", "python"), ("/js", "node")] {
        assert_eq!(stack.get(&format!("{prefix}/7")).json(), json!({"hello": runtime, "id": "7"}), "{runtime}");
        let echo = stack.request("POST", &format!("{prefix}/8?case=echo"), &[], Some(br#"{"a":[1,2]}"#));
        assert_eq!(echo.json(), json!({"echo": {"a": [1, 2]}, "id": "8"}), "{runtime}");
        let binary = stack.get(&format!("{prefix}/1?case=binary"));
        assert_eq!((binary.status, binary.body.clone()), (200, vec![0u8, 1, 2, 255]), "{runtime}");
        let custom = stack.get(&format!("{prefix}/1?case=custom"));
        assert_eq!((custom.status, custom.text().as_str(), custom.header("x-custom")), (201, "made", Some("yes")), "{runtime}");
        let error = stack.get(&format!("{prefix}/1?case=error"));
        assert_eq!(error.status, 500, "{runtime}: a ValueError is a 500, not upstream's 400");
        assert_eq!(error.json()["error"], "internal error");
    }
}

#[test]
fn handler_output_goes_to_the_log_tagged_with_function_and_request() {
    let stack = Stack::new()
        .file("py/handler.py", "def handler(event):\n    print('hello from python')\n    return {'ok': True}\n")
        .file("js/index.js", "exports.handler = () => { console.log('hello from node'); return { ok: true }; };\n")
        .start();
    for (path, line) in [("/py", "hello from python"), ("/js", "hello from node")] {
        let r = stack.get(path);
        assert_eq!(r.json(), json!({"ok": true}), "the print is not in the answer");
        let id = r.header("x-fastfn-request-id").expect("request id").to_string();
        let name = if path == "/py" { "py/handler.py" } else { "js/index.js" };
        let expected = format!("[fn:{name}] [{id}] {line}");
        assert!(wait_until(std::time::Duration::from_secs(5), || stack.log("runtime.log").contains(&expected)), "{expected} not in:\n{}", stack.log("runtime.log"));
    }
}

#[test]
fn a_request_passes_over_the_pool_worker_busy_with_a_slow_one() {
    // PHP serves one request at a time per process; the pool gives concurrency. One nginx worker, so the gateway's
    // in-flight counts (kept per nginx worker) see every request.
    let php = "<?php\nfunction handler($event) {\n    $s = $event[\"query\"][\"s\"] ?? \"\";\n    if ($s !== \"\") { usleep((int)(floatval($s) * 1000000)); }\n    return [\"pid\" => getmypid()];\n}\n";
    let stack = Stack::new()
        .env("FN_NGINX_WORKERS", "1")
        .file("slow/handler.php", php)
        .file("slow/fn.config.json", r#"{"timeout_ms": 6000, "worker_pool": {"max_workers": 2}}"#)
        .start();
    let port = stack.port;
    let slow = std::thread::spawn(move || crate::harness::http::get(port, "/slow?s=3"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The next request rotates to the other worker (starting it); the one after that would rotate back to the
    // busy worker, and is sent to the free one instead.
    let first = stack.get("/slow").json()["pid"].clone();
    let started = std::time::Instant::now();
    let second = stack.get("/slow");
    let waited = started.elapsed();
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["pid"], first, "the free worker answered");
    assert!(waited < std::time::Duration::from_millis(1500), "waited {waited:?} behind the slow request");
    let slow = slow.join().expect("slow request");
    assert_eq!(slow.status, 200);
    assert_ne!(slow.json()["pid"], first, "the slow request had the other worker");
}
