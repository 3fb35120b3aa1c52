//! Issue 10: `fastfn.toml` (in the functions folder or `--config`): the environment overrides the file, flags override
//! both, unknown keys and bad values name the file and the key, and `fastfn config show` says where each value came
//! from without printing secrets.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Stack, FASTFN};

const ECHO: &str = "def handler(event):\n    return {'n': len(event.get('body') or '')}\n";
const POST: &str = r#"{"invoke": {"methods": ["POST"]}}"#;
const TOKEN: &str = "settings-file-admin-token-0123456789";

#[test]
fn the_file_sets_defaults_and_the_environment_overrides_it() {
    let toml = "[defaults]\nmax_body_bytes = 16\n";
    let mut stack = Stack::new().file("echo/handler.py", ECHO).file("echo/fn.config.json", POST).file("fastfn.toml", toml).start();
    // Every function's limit is 16 bytes, so nginx's own cap refuses the body (and logs it).
    stack.allow_log("client intended to send too large body");
    assert_eq!(stack.request("POST", "/echo", &[], Some(&[b'x'; 16])).status, 200);
    assert_eq!(stack.request("POST", "/echo", &[], Some(&[b'x'; 17])).status, 413, "the file's body limit applies");
    assert_eq!(stack.get("/fastfn.toml").status, 404, "the settings file is not a route");
    drop(stack);

    let stack = Stack::new().file("echo/handler.py", ECHO).file("echo/fn.config.json", POST).file("fastfn.toml", toml).env("FN_DEFAULT_MAX_BODY_BYTES", "64").start();
    assert_eq!(stack.request("POST", "/echo", &[], Some(&[b'x'; 64])).status, 200, "the environment wins over the file");
}

#[test]
fn unknown_keys_and_bad_values_stop_the_start_naming_the_file_and_key() {
    let (mut command, functions, _work, _port) =
        Stack::new().file("echo/handler.py", ECHO).file("fastfn.toml", "[defaults]\ntimeout_mss = 5\n[console]\nlocal_only = \"maybe\"\n").prepare();
    let output = command.output().expect("run");
    assert_eq!(output.status.code(), Some(78), "EX_CONFIG");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = functions.path().join("fastfn.toml");
    assert!(stderr.contains(&format!("{}: unknown key `defaults.timeout_mss` (did you mean `defaults.timeout_ms`?)", file.display())), "{stderr}");
    assert!(stderr.contains("`console.local_only` must be true or false"), "{stderr}");

    // A value of the right type but out of range names the key too, not the variable.
    let (mut command, functions, _work, _port) = Stack::new().file("echo/handler.py", ECHO).file("fastfn.toml", "cold_start_timeout_ms = 0\n").prepare();
    let output = command.output().expect("run");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}: `cold_start_timeout_ms` must be a whole number ≥ 1", functions.path().join("fastfn.toml").display())), "{stderr}");

    // --config names a file that is not there.
    let (mut command, _functions, _work, _port) = Stack::new().file("echo/handler.py", ECHO).prepare();
    let output = command.arg("--config").arg("/nonexistent/fastfn.toml").output().expect("run");
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--config `/nonexistent/fastfn.toml`: no such file"));
}

fn show(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(FASTFN);
    command.args(["config", "show"]).arg(dir).args(args);
    for name in ["FN_HOST_BIND", "FN_HOST_PORT", "FN_ADMIN_TOKEN", "FN_DEFAULT_MAX_QUEUE", "FN_DEFAULT_TIMEOUT_MS"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().expect("run config show");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn config_show_says_where_each_value_came_from_and_hides_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("hello")).expect("mkdir");
    std::fs::write(dir.path().join("hello/handler.py"), ECHO).expect("write");
    let other = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(other.path(), "listen = \"127.0.0.1:9555\"\n[defaults]\ntimeout_ms = 4000\nmax_queue = 9\n").expect("write");
    let config = other.path().to_str().expect("utf-8 path");
    let (code, out) = show(dir.path(), &["--config", config, "--run-dir", "/tmp/elsewhere", "--json"], &[("FN_DEFAULT_MAX_QUEUE", "7"), ("FN_ADMIN_TOKEN", TOKEN)]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(TOKEN), "the admin token is never printed: {out}");
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(json["schema"], 1);
    assert_eq!(json["valid"], true);
    assert_eq!(json["file"], config);
    let row = |key: &str| json["settings"].as_array().and_then(|rows| rows.iter().find(|r| r["key"] == key)).cloned().unwrap_or_else(|| panic!("{key} missing: {json}"));
    assert_eq!((row("listen")["value"].clone(), row("listen")["source"].clone()), ("127.0.0.1:9555".into(), "file".into()));
    assert_eq!((row("defaults.timeout_ms")["value"].clone(), row("defaults.timeout_ms")["source"].clone()), ("4000".into(), "file".into()));
    assert_eq!((row("defaults.max_queue")["value"].clone(), row("defaults.max_queue")["source"].clone()), ("7".into(), "env".into()));
    assert_eq!((row("run_dir")["value"].clone(), row("run_dir")["source"].clone()), ("/tmp/elsewhere".into(), "flag".into()));
    assert_eq!((row("console.admin_token")["value"].clone(), row("console.admin_token")["source"].clone()), ("<hidden>".into(), "env".into()));
    assert_eq!(row("defaults.max_body_bytes")["source"], "default");

    // The flag wins over the file; an invalid value is reported with exit 78 (EX_CONFIG).
    let (code, out) = show(dir.path(), &["--config", config, "--listen", "127.0.0.1:9556"], &[("FN_DEFAULT_TIMEOUT_MS", "0")]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("127.0.0.1:9556") && out.contains("flag --listen"), "{out}");
    assert!(out.contains("invalid:") && out.contains("FN_DEFAULT_TIMEOUT_MS must be a whole number ≥ 1"), "{out}");
}
