//! Issue 4: the control plane is closed by default. Every guard branch against real nginx, in dev and run mode.
//! A caller from 127.0.0.2 is a non-local peer (only 127.0.0.1 and ::1 count as local).

use std::net::Ipv4Addr;

use serde_json::json;

use crate::harness::{http, Response, Stack};

const TOKEN: &str = "test-admin-token-0123456789abcdef";
const REMOTE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const HELLO: &str = "def handler(event):\n    return {'hello': 'world'}\n";

fn dev() -> crate::harness::StackBuilder {
    Stack::new().file("hello/handler.py", HELLO)
}

fn from_remote(stack: &Stack, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    http::request_from(REMOTE, stack.port, method, path, headers).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn refused(response: &Response, status: u16, error: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.json()["error"], error, "{}", response.text());
}

#[test]
fn dev_trusts_loopback_and_refuses_other_peers() {
    let stack = dev().start();
    let catalog = stack.get("/_fn/catalog");
    assert_eq!(catalog.status, 200, "{}", catalog.text());
    assert_eq!(catalog.json()["routes"][0]["path"], "/hello");
    assert_eq!(catalog.json()["conflicts"], json!([]), "empty lists stay lists through the gateway");
    let health = stack.get("/_fn/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert!(health.json()["runtimes"]["python"]["up"].as_bool().unwrap_or(false), "{}", health.text());

    refused(&from_remote(&stack, "GET", "/_fn/catalog", &[]), 403, "console api local-only");
    let public_health = from_remote(&stack, "GET", "/_fn/health", &[]);
    assert_eq!(public_health.status, 200);
    assert_eq!(public_health.json(), json!({"status": "ok"}), "public callers get the summary only");
    assert_eq!(from_remote(&stack, "GET", "/hello", &[]).status, 200, "public routes serve everyone");
}

#[test]
fn run_mode_needs_the_token_even_from_loopback() {
    let stack = dev().mode("run").env("FN_ADMIN_TOKEN", TOKEN).start();
    refused(&stack.get("/_fn/catalog"), 401, "admin token required");
    assert_eq!(stack.get("/_fn/health").json(), json!({"status": "ok"}));
    let ok = stack.request("GET", "/_fn/catalog", &[("X-Fn-Admin-Token", TOKEN)], None);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let lower = stack.request("GET", "/_fn/catalog", &[("x-fn-admin-token", TOKEN)], None);
    assert_eq!(lower.status, 200, "header names are case-insensitive");
    let full_health = stack.request("GET", "/_fn/health", &[("x-fn-admin-token", TOKEN)], None);
    assert!(full_health.json().get("functions").is_some(), "trusted callers get the snapshot");
    let remote = http::request_from(REMOTE, stack.port, "GET", "/_fn/catalog", &[("x-fn-admin-token", TOKEN)]).expect("answer");
    assert_eq!(remote.status, 200, "the token admits remote callers");
    refused(&stack.request("GET", "/_fn/catalog", &[("x-fn-admin-token", "wrong-token-wrong-token-wrong")], None), 401, "invalid admin token");
    let duplicated = stack.request("GET", "/_fn/catalog", &[("x-fn-admin-token", TOKEN), ("x-fn-admin-token", TOKEN)], None);
    refused(&duplicated, 401, "invalid admin token");
}

#[test]
fn run_mode_without_a_token_closes_everything_but_health() {
    let stack = dev().mode("run").start();
    refused(&stack.get("/_fn/catalog"), 401, "admin token required");
    refused(&stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1")], None), 401, "admin token required");
    assert_eq!(stack.get("/_fn/health").status, 200);
}

#[test]
fn wrong_tokens_are_rate_limited() {
    let stack = dev().mode("run").env("FN_ADMIN_TOKEN", TOKEN).env("FN_CONSOLE_LOGIN_RATE_LIMIT_MAX", "3").start();
    for _ in 0..3 {
        refused(&stack.request("GET", "/_fn/catalog", &[("x-fn-admin-token", "nope-nope-nope-nope-nope-nope")], None), 401, "invalid admin token");
    }
    let locked = stack.request("GET", "/_fn/catalog", &[("x-fn-admin-token", TOKEN)], None);
    assert_eq!(locked.status, 429, "even the right token waits out the lockout: {}", locked.text());
    // Another client address is not locked out.
    let other = http::request_from(REMOTE, stack.port, "GET", "/_fn/catalog", &[("x-fn-admin-token", TOKEN)]).expect("answer");
    assert_eq!(other.status, 200);
}

#[test]
fn a_short_token_is_refused_at_startup_without_echoing_it() {
    let (mut command, _f, _w, _p) = dev().env("FN_ADMIN_TOKEN", "too-short-token").prepare();
    let output = command.output().expect("run");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 24"), "{stderr}");
    assert!(!stderr.contains("too-short-token"), "{stderr}");
}

#[test]
fn invalid_flags_are_startup_errors() {
    let (mut command, _f, _w, _p) = dev().env("FN_CONSOLE_LOCAL_ONLY", "maybe").env("FN_UI_ENABLED", "2").prepare();
    let output = command.output().expect("run");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FN_CONSOLE_LOCAL_ONLY") && stderr.contains("FN_UI_ENABLED"), "{stderr}");
}

#[test]
fn api_switches() {
    let stack = dev().env("FN_CONSOLE_API_ENABLED", "0").start();
    refused(&stack.get("/_fn/catalog"), 404, "console api disabled");
    assert!(matches!(stack.get("/_fn/health").status, 200 | 503), "health stays reachable");
    let stack = dev().env("FN_ADMIN_API_ENABLED", "off").env("FN_ADMIN_TOKEN", TOKEN).start();
    refused(&stack.request("GET", "/_fn/catalog", &[("x-fn-admin-token", TOKEN)], None), 404, "admin api disabled");
}

#[test]
fn foreign_hosts_are_refused_and_configured_ones_allowed() {
    let stack = dev().env("FN_CONSOLE_ALLOWED_HOSTS", "fastfn.internal").start();
    refused(&stack.request("GET", "/_fn/catalog", &[("Host", "evil.example")], None), 403, "host not allowed");
    assert_eq!(stack.request("GET", "/_fn/catalog", &[("Host", "localhost:8080")], None).status, 200);
    assert_eq!(stack.request("GET", "/_fn/catalog", &[("Host", "FastFN.internal")], None).status, 200);
    assert_eq!(stack.request("GET", "/hello", &[("Host", "evil.example")], None).status, 200, "public routes ignore the control-plane host list");
}

#[test]
fn forwarded_headers_void_local_trust_unless_the_peer_is_a_trusted_proxy() {
    let stack = dev().start();
    for header in ["X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "X-Real-IP"] {
        let value = if header == "Forwarded" { "for=127.0.0.1" } else { "127.0.0.1" };
        refused(&stack.request("GET", "/_fn/catalog", &[(header, value)], None), 403, "console api local-only");
    }
    let proxied = dev().env("FN_TRUSTED_PROXY_CIDRS", "127.0.0.1/32").start();
    assert_eq!(proxied.request("GET", "/_fn/catalog", &[("X-Forwarded-For", "127.0.0.1")], None).status, 200);
    refused(&proxied.request("GET", "/_fn/catalog", &[("X-Forwarded-For", "203.0.113.9")], None), 403, "console api local-only");
    // An untrusted peer cannot claim to be a proxy's client.
    refused(&from_remote(&proxied, "GET", "/_fn/catalog", &[("X-Forwarded-For", "127.0.0.1")]), 403, "console api local-only");
}

#[test]
fn trusted_cidrs_extend_local() {
    let stack = dev().env("FN_CONSOLE_TRUSTED_CIDRS", "127.0.0.2/32").start();
    assert_eq!(from_remote(&stack, "GET", "/_fn/catalog", &[]).status, 200);
}

#[test]
fn writes_need_csrf_the_write_switch_and_a_same_origin() {
    let stack = dev().start();
    refused(&stack.request("POST", "/_fn/reload", &[], None), 403, "missing CSRF header");
    refused(&stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1")], None), 403, "console write disabled");

    let stack = dev().env("FN_CONSOLE_WRITE_ENABLED", "1").start();
    refused(&stack.request("POST", "/_fn/reload", &[], None), 403, "missing CSRF header");
    refused(&stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "yes")], None), 403, "missing CSRF header");
    for (name, value) in [("Origin", "https://evil.example"), ("Origin", "null"), ("Sec-Fetch-Mode", "no-cors"), ("Sec-Fetch-Site", "cross-site"), ("Upgrade", "websocket")] {
        let r = stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1"), (name, value)], None);
        refused(&r, 403, "cross-origin request refused");
    }
    let same_origin = format!("http://127.0.0.1:{}", stack.port);
    let ok = stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1"), ("Origin", &same_origin)], None);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["ok"], true);
    refused(&from_remote(&stack, "POST", "/_fn/reload", &[("X-Fn-Request", "1")]), 403, "console api local-only");
}

#[test]
fn get_on_reload_is_405_with_allow() {
    let stack = dev().mode("run").env("FN_ADMIN_TOKEN", TOKEN).start();
    let response = stack.request("GET", "/_fn/reload", &[("x-fn-admin-token", TOKEN)], None);
    refused(&response, 405, "method not allowed");
    assert_eq!(response.header("allow"), Some("POST"));
    refused(&stack.request("GET", "/_fn/nope", &[("x-fn-admin-token", TOKEN)], None), 404, "not found");
}

#[test]
fn reload_picks_up_a_new_function_and_keeps_serving_the_old_ones() {
    let stack = dev().mode("run").env("FN_ADMIN_TOKEN", TOKEN).start();
    assert_eq!(stack.get("/hello").status, 200);
    assert_eq!(stack.get("/added").status, 404);
    std::fs::create_dir_all(stack.functions.path().join("added")).expect("mkdir");
    std::fs::write(stack.functions.path().join("added/index.js"), "exports.handler = () => ({ added: true });\n").expect("write");
    let reload = stack.request("POST", "/_fn/reload", &[("x-fn-admin-token", TOKEN)], None);
    assert_eq!(reload.status, 200, "{}", reload.text());
    assert_eq!(reload.json()["functions"], 2);
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || stack.get("/added").status == 200));
    assert_eq!(stack.get("/added").json(), json!({"added": true}));
    assert_eq!(stack.get("/hello").status, 200);
}

#[test]
fn path_spellings_never_skip_the_guard_or_reach_a_function() {
    // A function folder named like the control plane normalises to /fn/..., never /_fn/...
    let stack = dev().file("_fn/catalog.py", "def handler(event):\n    return {'leak': True}\n").start();
    let canonical = from_remote(&stack, "GET", "/_fn/catalog", &[]);
    refused(&canonical, 403, "console api local-only");
    for path in [
        "//_fn/catalog",
        "/_fn/../_fn/catalog",
        "/_fn/./catalog",
        "/x/../_fn/catalog",
        "/%5Ffn/catalog",
        "/%5ffn/catalog",
        "/_fn%2Fcatalog",
        "/_FN/catalog",
        "/_Fn/catalog",
        "/console/..%2F_fn/function-env",
        "/_fn/catalog/",
        "/_fn/catalog.",
        "/_fn/catalog%00",
        "/_fn/catalog%2e",
    ] {
        let response = from_remote(&stack, "GET", path, &[]);
        assert!(matches!(response.status, 400 | 403 | 404), "{path}: {} {}", response.status, response.text());
        assert!(!response.text().contains("leak"), "{path} reached a function");
        assert!(!response.text().contains("routes"), "{path} leaked the catalog");
    }
    let long = from_remote(&stack, "GET", &format!("/_fn/{}", "a".repeat(16 * 1024)), &[]);
    assert!(matches!(long.status, 403 | 414), "{}", long.status);
    assert_eq!(stack.get("/fn/catalog").json(), json!({"leak": true}), "the look-alike function serves on its own path");
}

#[test]
fn read_rate_limit() {
    let stack = dev().env("FN_CONSOLE_RATE_LIMIT_MAX", "3").start();
    for _ in 0..3 {
        assert_eq!(stack.get("/_fn/catalog").status, 200);
    }
    let limited = stack.get("/_fn/catalog");
    refused(&limited, 429, "too many console requests, try again later");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(stack.get("/hello").status, 200, "public routes are not limited by the console limit");
}

#[test]
fn console_ui_is_off_by_default() {
    let stack = dev().start();
    refused(&stack.get("/console"), 404, "console ui disabled");
    refused(&stack.get("/console/anything"), 404, "console ui disabled");
}

#[test]
fn the_access_log_never_records_the_token_or_control_plane_queries() {
    let stack = dev().mode("run").env("FN_ADMIN_TOKEN", TOKEN).start();
    let _ = stack.request("GET", "/_fn/catalog?secret=hunter2", &[("x-fn-admin-token", TOKEN)], None);
    let _ = stack.request("GET", &format!("/_fn/catalog?token={TOKEN}"), &[], None);
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || stack.log("access.log").contains("/_fn/catalog")));
    for file in ["access.log", "error.log", "runtime.log"] {
        let text = stack.log(file);
        assert!(!text.contains(TOKEN), "{file} has the token");
        assert!(!text.contains("hunter2"), "{file} has a control-plane query string");
    }
    let settings = std::fs::read_to_string(stack.run_dir().join("conf/gateway.json")).expect("gateway.json");
    assert!(!settings.contains(TOKEN), "the gateway's settings hold a MAC, not the token");
}

#[test]
fn metrics_count_requests_by_function_and_status() {
    let stack = dev().file("boom/handler.py", "def handler(event):\n    raise ValueError('x')\n").start();
    for _ in 0..3 {
        assert_eq!(stack.get("/hello").status, 200);
    }
    assert_eq!(stack.get("/boom").status, 500);
    assert_eq!(stack.get("/nope").status, 404);
    let metrics = stack.get("/_fn/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    assert!(metrics.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
    let expected = [
        r#"fastfn_requests_total{function="hello/handler.py",runtime="python",status="200"} 3"#,
        r#"fastfn_requests_total{function="boom/handler.py",runtime="python",status="500"} 1"#,
        r#"fastfn_requests_total{function="",runtime="",status="404"} 1"#,
        r#"fastfn_request_duration_seconds_count{function="hello/handler.py",runtime="python"} 3"#,
        r#"fastfn_request_duration_seconds_bucket{function="hello/handler.py",runtime="python",le="+Inf"} 3"#,
        r#"fastfn_worker_up{function="hello/handler.py",runtime="python"} 1"#,
        r#"fastfn_worker_restarts_total{function="hello/handler.py",runtime="python"} 0"#,
        "fastfn_up 1",
    ];
    // nginx counts a request in its log phase, after the answer is sent: the last one may land a moment later.
    let mut text = metrics.text();
    let complete = crate::harness::wait_until(std::time::Duration::from_secs(5), || {
        text = stack.get("/_fn/metrics").text();
        expected.iter().all(|line| text.contains(line))
    });
    for line in expected {
        assert!(complete && text.contains(line), "missing {line}:\n{text}");
    }
    refused(&from_remote(&stack, "GET", "/_fn/metrics", &[]), 403, "console api local-only");
}

#[test]
fn logs_endpoint_tails_and_filters() {
    let stack = dev()
        .file("talk/handler.py", "def handler(event):\n    print('talking', event['query'].get('n'), flush=True)\n    return {}\n")
        .start();
    for n in 0..5 {
        assert_eq!(stack.get(&format!("/talk?n={n}")).status, 200);
    }
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), || stack.log("runtime.log").contains("talking 4")));
    let logs = stack.get("/_fn/logs?file=runtime&lines=2&fn=talk/handler.py");
    assert_eq!(logs.status, 200, "{}", logs.text());
    let lines = logs.json()["runtime"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].as_str().unwrap_or_default().contains("talking 4"));
    assert!(lines.iter().all(|l| l.as_str().unwrap_or_default().starts_with("[fn:talk/handler.py]")));
    let all = stack.get("/_fn/logs");
    assert!(all.json().get("error").is_some() && all.json().get("access").is_some());
    refused(&stack.get("/_fn/logs?file=secrets"), 400, "file must be one of error, access, runtime, all");
    refused(&stack.get("/_fn/logs?lines=0"), 400, "lines must be a whole number from 1 to 5000");
}

#[test]
fn openapi_describes_public_routes_and_internal_ones_on_request() {
    let stack = dev().file("get.users.[id].js", "exports.handler = () => ({});\n").start();
    let doc = stack.get("/_fn/openapi.json");
    assert_eq!(doc.status, 200, "{}", doc.text());
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"].get("/users/{id}").is_some() && doc["paths"].get("/hello").is_some(), "{doc}");
    assert!(doc["paths"].as_object().is_some_and(|p| p.keys().all(|k| !k.starts_with("/_fn"))));
    assert_eq!(doc["servers"][0]["url"], format!("http://127.0.0.1:{}", stack.port));

    validate_openapi(&doc);

    let internal = dev()
        .env("FN_OPENAPI_INCLUDE_INTERNAL", "1")
        .env("FN_PUBLIC_BASE_URL", "https://api.example.com/")
        .file("docs/[...path].js", "exports.handler = () => ({});\n")
        .file("node/svc/handler.js", "exports.handler = () => ({});\n")
        .file("post.items.py", "def handler(event):\n    return {}\n")
        .start();
    let doc = internal.get("/_fn/openapi.json").json();
    assert!(doc["paths"].get("/_fn/reload").is_some());
    assert_eq!(doc["servers"][0]["url"], "https://api.example.com");
    validate_openapi(&doc);
}

/// Checks a document with openapi-spec-validator (PyPI), which scripts/setup.sh installs.
fn validate_openapi(doc: &serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let has_validator = std::process::Command::new("python3").args(["-c", "import openapi_spec_validator"]).output().is_ok_and(|o| o.status.success());
    if !has_validator {
        assert!(
            !nix::unistd::Uid::effective().is_root(),
            "openapi-spec-validator is missing: scripts/setup.sh installs it"
        );
        eprintln!("skipped the OpenAPI validation: this user's python3 has no openapi-spec-validator");
        return;
    }
    let out = std::process::Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(&file).output().expect("run the validator");
    assert!(out.status.success(), "invalid OpenAPI document:\n{}\n{}", String::from_utf8_lossy(&out.stdout), doc);
}

#[test]
fn a_failed_reload_keeps_the_last_good_catalog_serving() {
    // Without the watcher: moving the folder back would otherwise trigger a good reload that replaces `last`.
    let stack = dev().env("FN_CONSOLE_WRITE_ENABLED", "yes").env("FN_HOT_RELOAD", "0").start();
    assert_eq!(stack.get("/hello").status, 200);
    let moved = stack.functions.path().with_extension("moved");
    std::fs::rename(stack.functions.path(), &moved).expect("move the folder away");
    let reload = stack.request("POST", "/_fn/reload", &[("X-Fn-Request", "1")], None);
    std::fs::rename(&moved, stack.functions.path()).expect("move it back");
    assert_eq!(reload.status, 422, "{}", reload.text());
    assert_eq!(reload.json()["error"], "reload failed");
    assert!(reload.json()["detail"].as_str().is_some_and(|d| d.contains("does not exist")), "{}", reload.text());
    assert_eq!(stack.get("/hello").status, 200, "the last good catalog still serves");
    let health = stack.get("/_fn/health").json();
    assert_eq!(health["reload"]["last"]["ok"], false, "{health}");
}

#[test]
fn other_local_users_cannot_reach_the_sockets() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root to start the stack for one user and connect as another");
        return;
    }
    let stack = dev().start();
    assert_eq!(stack.get("/hello").status, 200, "a worker socket exists now");
    let run = stack.run_dir();
    let worker_socket = std::fs::read_dir(run.join("sock")).expect("sock dir").flatten().next().expect("a worker socket").path();
    for socket in [run.join("ctl.sock"), worker_socket] {
        let probe = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n    print(e.errno)\n";
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "python3", "-c", probe])
            .arg(&socket)
            // Debian's python3, not a shim in root's home that nobody cannot run.
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("run the probe as nobody");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(said, "13", "{}: nobody got {said:?} (13 = EACCES); stderr: {}", socket.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn hot_reload_serves_new_edited_and_removed_functions_and_keeps_unchanged_workers() {
    let stack = dev()
        .file("stable/handler.py", "import os\ndef handler(event):\n    return {'pid': os.getpid()}\n")
        .file("stable/fn.config.json", r#"{"worker_pool": {"max_workers": 1}}"#)
        .file("edited/handler.py", "def handler(event):\n    return {'version': 1}\n")
        .file("removed/handler.py", "def handler(event):\n    return {}\n")
        .start();
    let stable_pid = stack.get("/stable").json()["pid"].clone();
    assert_eq!(stack.get("/edited").json(), json!({"version": 1}));
    assert_eq!(stack.get("/removed").status, 200);
    let root = stack.functions.path();
    std::fs::create_dir_all(root.join("added")).expect("mkdir");
    std::fs::write(root.join("added/index.js"), "exports.handler = () => ({ added: true });\n").expect("add");
    std::fs::write(root.join("edited/handler.py"), "def handler(event):\n    return {'version': 2}\n").expect("edit");
    std::fs::remove_dir_all(root.join("removed")).expect("remove");
    let ok = crate::harness::wait_until(std::time::Duration::from_secs(10), || {
        stack.get("/added").status == 200 && stack.get("/edited").json() == json!({"version": 2}) && stack.get("/removed").status == 404
    });
    assert!(ok, "the changes were not served: {}", stack.stderr());
    assert_eq!(stack.get("/stable").json()["pid"], stable_pid, "an unchanged function keeps its worker");
    assert!(stack.stderr().contains("reloaded after changes to"), "the reload is announced");
    // An invalid edit keeps the last good version serving.
    std::fs::write(root.join("edited/fn.config.json"), r#"{"timeout_ms": "soon"}"#).expect("bad edit");
    let refused = crate::harness::wait_until(std::time::Duration::from_secs(10), || {
        stack.get("/_fn/health").json()["functions"].as_array().is_some_and(|fs| fs.iter().any(|f| f["refused_edit"].is_string()))
    });
    assert!(refused, "the invalid edit is reported");
    assert_eq!(stack.get("/edited").json(), json!({"version": 2}), "the last good version keeps serving");
}
