//! Issue 4, secrets: fn.env.json values reach only their own function's `event.env`; secret values are `<hidden>`
//! in every API answer and masked in every log; updates go through the supervisor.

use std::time::Duration;

use serde_json::json;

use crate::harness::{wait_until, Stack};

const SECRET: &str = "s3cret-Value-42-xyz";
const ENV_PY: &str = "import base64\ndef handler(event):\n    env = event.get('env') or {}\n    print('secret is', env.get('API_KEY'), base64.b64encode((env.get('API_KEY') or '').encode()).decode(), flush=True)\n    return {'env': env}\n";

fn env_file(secret: &str) -> String {
    format!(r#"{{"API_KEY": {{"value": "{secret}", "is_secret": true}}, "REGION": "eu", "COUNT": 3}}"#)
}

fn all_logs(stack: &Stack) -> String {
    ["access.log", "error.log", "runtime.log"].iter().map(|f| stack.log(f)).collect::<Vec<_>>().join("\n") + &stack.stderr() + &stack.stdout()
}

#[test]
fn a_function_gets_its_own_env_and_apis_hide_secrets() {
    let stack = Stack::new()
        .file("api/handler.py", ENV_PY)
        .file("api/fn.env.json", &env_file(SECRET))
        .file("other/handler.py", "def handler(event):\n    return {'env': event.get('env')}\n")
        .file("other/fn.env.json", r#"{"ONLY_OTHER": "x"}"#)
        .file("bare/index.js", "exports.handler = (event) => ({ hasEnv: 'env' in event });\n")
        .start();
    let api = stack.get("/api");
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(api.json()["env"], json!({"API_KEY": SECRET, "REGION": "eu", "COUNT": "3"}));
    assert_eq!(stack.get("/other").json()["env"], json!({"ONLY_OTHER": "x"}), "no other function's values");
    assert_eq!(stack.get("/bare").json(), json!({"hasEnv": false}), "no env key without fn.env.json");

    let view = stack.get("/_fn/function-env?function=api/handler.py");
    assert_eq!(view.status, 200, "{}", view.text());
    assert_eq!(view.json()["env"]["API_KEY"], json!({"value": "<hidden>", "is_secret": true}));
    assert_eq!(view.json()["env"]["REGION"], json!({"value": "eu", "is_secret": false}));
    for path in ["/_fn/function-env?function=api/handler.py", "/_fn/catalog", "/_fn/health"] {
        assert!(!stack.get(path).text().contains(SECRET), "{path} shows the secret");
    }
    assert_eq!(stack.get("/_fn/function-env?function=nope").status, 404);
    assert_eq!(stack.get("/_fn/function-env").status, 400);

    // The handler printed the secret raw and as base64: both are masked in the log.
    assert!(wait_until(Duration::from_secs(5), || stack.log("runtime.log").contains("secret is")));
    assert!(stack.log("runtime.log").contains("secret is <hidden>"), "{}", stack.log("runtime.log"));
    assert!(!all_logs(&stack).contains(SECRET));
    assert!(!all_logs(&stack).contains("czNjcmV0LVZhbHVlLTQyLXh5"), "base64 form masked");

    // Secrets are passed per request, never in a worker's environment.
    let pids = crate::harness::procs::descendants(stack.pid());
    for pid in pids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&environ).contains(SECRET), "pid {pid} has the secret in its environment");
    }
}

#[test]
fn secrets_set_through_the_api_reach_the_handler_and_stay_hidden() {
    let stack = Stack::new().env("FN_CONSOLE_WRITE_ENABLED", "1").file("api/handler.py", ENV_PY).start();
    let put = |body: &str| stack.request("PUT", "/_fn/function-env?function=api/handler.py", &[("X-Fn-Request", "1"), ("Content-Type", "application/json")], Some(body.as_bytes()));
    let set = put(&format!(r#"{{"API_KEY": {{"value": "{SECRET}", "is_secret": true}}, "PLAIN": "p"}}"#));
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["env"]["API_KEY"]["value"], "<hidden>");
    assert!(!set.text().contains(SECRET));
    assert!(wait_until(Duration::from_secs(5), || stack.get("/api").json()["env"]["API_KEY"] == SECRET));

    // "<hidden>" without is_secret keeps the value and keeps it secret (upstream un-marked it).
    let keep = put(r#"{"API_KEY": {"value": "<hidden>"}, "PLAIN": null}"#);
    assert_eq!(keep.status, 200, "{}", keep.text());
    assert_eq!(keep.json()["env"], json!({"API_KEY": {"value": "<hidden>", "is_secret": true}}));
    let file = std::fs::read_to_string(stack.functions.path().join("api/fn.env.json")).expect("written");
    assert!(file.contains("\"is_secret\": true"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(stack.functions.path().join("api/fn.env.json")).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(wait_until(Duration::from_secs(5), || stack.get("/api").json()["env"] == json!({"API_KEY": SECRET})));

    for (body, status) in [("[1]", 400), ("{\"1BAD\": \"x\"}", 400), ("{\"MISSING\": \"<hidden>\"}", 400), ("nope", 400)] {
        let r = put(body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    assert!(!all_logs(&stack).contains(SECRET), "the secret leaked into a log");
}

#[test]
fn exceptions_carrying_a_secret_are_masked_and_never_shown() {
    let stack = Stack::new()
        .mode("run")
        .file("boom/handler.py", "def handler(event):\n    raise RuntimeError('bad key ' + event['env']['API_KEY'])\n")
        .file("boom/fn.env.json", &env_file(SECRET))
        .start();
    let response = stack.get("/boom");
    assert_eq!(response.status, 500);
    assert!(!response.text().contains(SECRET));
    assert!(wait_until(Duration::from_secs(5), || stack.log("runtime.log").contains("bad key")));
    assert!(stack.log("runtime.log").contains("bad key <hidden>"));
    assert!(!all_logs(&stack).contains(SECRET));
}

#[test]
fn dev_error_details_do_not_quote_env_values() {
    let stack = Stack::new()
        .file("boom/handler.py", "def handler(event):\n    raise RuntimeError('bad key ' + event['env']['API_KEY'])\n")
        .file("boom/fn.env.json", &env_file(SECRET))
        .file("boomjs/index.js", "exports.handler = (event) => { throw new Error('bad key ' + event.env.API_KEY); };\n")
        .file("boomjs/fn.env.json", &env_file(SECRET))
        .start();
    for path in ["/boom", "/boomjs"] {
        let response = stack.get(path);
        assert_eq!(response.status, 500);
        assert_eq!(response.json()["detail"], "RuntimeError: bad key <hidden>".replace("RuntimeError", if path == "/boom" { "RuntimeError" } else { "Error" }));
    }
}

#[test]
fn a_broken_env_file_names_the_file_and_key_and_the_rest_serve() {
    let stack = Stack::new()
        .file("broken/handler.py", "def handler(event):\n    return {'env': event.get('env')}\n")
        .file("broken/fn.env.json", r#"{"GOOD": "x", "BAD": [1, 2]}"#)
        .file("fine/handler.py", "def handler(event):\n    return {'ok': True}\n")
        .start();
    let stderr = stack.stderr();
    assert!(stderr.contains("fn.env.json in") && stderr.contains("broken") && stderr.contains("`BAD`"), "{stderr}");
    assert_eq!(stack.get("/fine").status, 200);
    let broken = stack.get("/broken");
    assert_eq!(broken.status, 200);
    assert_eq!(broken.json()["env"], serde_json::Value::Null);
}
