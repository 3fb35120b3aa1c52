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
