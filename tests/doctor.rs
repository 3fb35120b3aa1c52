//! `fastfn doctor` against the real binaries of this host: everything present, PHP missing from PATH, the port
//! taken, an invalid fn.config.json, a bad --listen. Passes as root (service-user checks run) and as an unprivileged
//! user (they say "no privilege drop").

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{free_port, FASTFN};

/// The variables that would change which binaries or address doctor looks at.
const OVERRIDES: [&str; 7] = ["FN_PHP_BIN", "FN_PYTHON_BIN", "FN_NODE_BIN", "FN_GO_BIN", "FN_OPENRESTY_BIN", "FN_HOST_BIND", "FN_HOST_PORT"];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn doctor(args: &[&str], configure: impl FnOnce(&mut Command)) -> Run {
    let mut command = Command::new(FASTFN);
    command.arg("doctor").args(args).env_remove("FN_HOST_BIND").env_remove("FN_HOST_PORT").env_remove("NO_COLOR");
    configure(&mut command);
    let out = command.output().expect("run fastfn doctor");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// A functions folder with the given files (readable by everyone, as a service user would need).
fn functions(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("fastfn-doctor-").tempdir().expect("temp dir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for (path, contents) in files {
        let target = dir.path().join(path);
        std::fs::create_dir_all(target.parent().expect("has a folder")).expect("mkdir");
        std::fs::write(&target, contents).expect("write");
    }
    dir
}

const HELLO: (&str, &str) = ("hello/handler.py", "def handler(event):\n    return {}\n");

fn check<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["checks"].as_array().and_then(|checks| checks.iter().find(|c| c["name"] == name)).unwrap_or_else(|| panic!("no `{name}` check: {json}"))
}

fn listen() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn doctor_with_everything_present_passes() {
    let dir = functions(&[HELLO]);
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let run = doctor(&["--json", dir_arg, "--listen", &listen()], |_| {});
    let json = run.json();
    assert_eq!(run.code, 0, "{json}\n{}", run.stderr);
    assert_eq!(json["schema"], 1);
    assert_eq!(json["ok"], true);
    for name in ["nginx", "python", "node", "php", "go", "port", "functions", "landlock", "seccomp", "user"] {
        let found = check(&json, name);
        assert!(found["status"] == "ok" || found["status"] == "warn", "{name}: {found}");
        assert!(found["detail"].as_str().is_some_and(|d| !d.is_empty()), "{name} says what it found: {found}");
    }
    for name in ["nginx", "python", "node", "php", "go"] {
        let found = check(&json, name);
        assert!(found["path"].as_str().is_some_and(|p| Path::new(p).is_absolute()), "{name} names its path: {found}");
        assert!(found["version"].as_str().is_some_and(|v| v.contains('.')), "{name} names its version: {found}");
    }
    for found in json["checks"].as_array().expect("checks") {
        assert!(["ok", "warn"].contains(&found["status"].as_str().unwrap_or("")), "{found}");
    }

    // The same, for a human, with stdout not a terminal: one line per check, no colour codes, a summary.
    let run = doctor(&[dir_arg, "--listen", &listen()], |_| {});
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains('\x1b'), "no ANSI codes when stdout is not a terminal: {}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("ok   nginx ")), "{}", run.stdout);
    assert!(lines.last().is_some_and(|l| l.contains("0 failure(s)")), "{}", run.stdout);
}

/// A folder of symlinks to the programs doctor found with the full PATH (so no machine-specific paths), except PHP.
fn path_without_php(found: &Value) -> tempfile::TempDir {
    let bin = tempfile::Builder::new().prefix("fastfn-bin-").tempdir().expect("temp dir");
    for (check_name, link) in [("python", "python3"), ("node", "node"), ("go", "go"), ("nginx", "")] {
        let target = PathBuf::from(check(found, check_name)["path"].as_str().unwrap_or_else(|| panic!("{check_name} has a path: {found}")));
        // nginx keeps its own name (`nginx` or `openresty`), which is what doctor looks for.
        let link = if link.is_empty() { target.file_name().expect("file name").to_string_lossy().into_owned() } else { link.to_string() };
        std::os::unix::fs::symlink(&target, bin.path().join(link)).expect("symlink");
    }
    bin
}

#[test]
fn doctor_without_php_fails_and_still_checks_the_rest() {
    let dir = functions(&[HELLO, ("hello-php/handler.php", "<?php\nfunction handler($event) { return []; }\n")]);
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let everything = doctor(&["--json", dir_arg, "--listen", &listen()], |_| {});
    assert_eq!(everything.code, 0, "the host has every program to begin with: {}", everything.stdout);
    let bin = path_without_php(&everything.json());

    let run = doctor(&["--json", dir_arg, "--listen", &listen()], |command| {
        for var in OVERRIDES {
            command.env_remove(var);
        }
        command.env("PATH", bin.path());
    });
    let json = run.json();
    assert_eq!(run.code, 1, "{json}\n{}", run.stderr);
    assert_eq!(json["ok"], false);
    let php = check(&json, "php");
    assert_eq!(php["status"], "fail", "{php}");
    assert!(php["detail"].as_str().is_some_and(|d| d.contains("php")), "names php: {php}");
    assert!(php["detail"].as_str().is_some_and(|d| d.contains("1 function uses it")), "says a function needs it: {php}");
    assert!(php["hint"].as_str().is_some_and(|h| h.contains("FN_PHP_BIN") && h.contains("php")), "{php}");
    for name in ["nginx", "python", "node", "go", "port", "functions"] {
        assert_eq!(check(&json, name)["status"], "ok", "{name} still checked: {json}");
    }

    let run = doctor(&[dir_arg, "--listen", &listen()], |command| {
        for var in OVERRIDES {
            command.env_remove(var);
        }
        command.env("PATH", bin.path());
    });
    assert_eq!(run.code, 1);
    let line = run.stdout.lines().find(|l| l.starts_with("FAIL php")).unwrap_or_else(|| panic!("a FAIL php line: {}", run.stdout));
    assert!(line.contains("hint:"), "{line}");
}

#[test]
fn doctor_reports_a_taken_port() {
    let dir = functions(&[HELLO]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let run = doctor(&["--json", dir.path().to_str().expect("utf-8 path"), "--listen", &addr], |_| {});
    let json = run.json();
    assert_eq!(run.code, 1, "{json}");
    let port = check(&json, "port");
    assert_eq!(port["status"], "fail", "{port}");
    assert!(port["detail"].as_str().is_some_and(|d| d.contains(&addr) && d.contains("in use")), "{port}");
    assert!(port["hint"].as_str().is_some_and(|h| h.contains("--listen") && h.contains("fastfn status")), "{port}");
    assert_eq!(check(&json, "functions")["status"], "ok", "the other checks still ran: {json}");
}

#[test]
fn doctor_names_an_invalid_fn_config_json() {
    let dir = functions(&[HELLO, ("bad/handler.py", "def handler(event):\n    return {}\n"), ("bad/fn.config.json", "{\"timeout_ms\": ")]);
    let run = doctor(&["--json", dir.path().to_str().expect("utf-8 path"), "--listen", &listen()], |_| {});
    let json = run.json();
    assert_eq!(run.code, 1, "{json}");
    let bad_file = std::fs::canonicalize(dir.path()).expect("canonical").join("bad").join("fn.config.json");
    let failures: Vec<&Value> = json["checks"].as_array().expect("checks").iter().filter(|c| c["status"] == "fail").collect();
    assert_eq!(failures.len(), 1, "only the config fails: {json}");
    let config = failures[0];
    assert_eq!(config["name"], "config", "{config}");
    assert_eq!(config["path"].as_str().map(PathBuf::from), Some(bad_file.clone()), "{config}");
    let detail = config["detail"].as_str().unwrap_or("");
    assert!(detail.contains("fn.config.json") && detail.contains(&bad_file.parent().expect("folder").display().to_string()), "names the file: {config}");
    assert_eq!(check(&json, "functions")["status"], "ok", "discovery itself worked: {json}");
}

#[test]
fn doctor_usage_errors_exit_2_and_a_missing_folder_fails() {
    let run = doctor(&["--listen", "localhost"], |_| {});
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--listen"), "{}", run.stderr);
    assert_eq!(doctor(&["--no-such-flag"], |_| {}).code, 2);

    let gone = functions(&[]).path().join("gone");
    let run = doctor(&["--json", gone.to_str().expect("utf-8 path"), "--listen", &listen()], |_| {});
    let json = run.json();
    assert_eq!(run.code, 1, "{json}");
    let folder = check(&json, "functions");
    assert_eq!(folder["status"], "fail", "{folder}");
    assert!(folder["detail"].as_str().is_some_and(|d| d.contains("gone")), "{folder}");
}

#[test]
fn doctor_reads_fastfn_toml_and_fails_on_a_broken_one() {
    // The file's binaries.php points nowhere: doctor believes the file, like `run` would.
    let dir = functions(&[HELLO, ("fastfn.toml", "[binaries]\nphp = \"/nonexistent/php\"\n")]);
    let run = doctor(&["--json", dir.path().to_str().expect("utf-8 path"), "--listen", &listen()], |c| {
        c.env_remove("FN_PHP_BIN");
    });
    let json = run.json();
    assert_eq!(run.code, 1, "{json}");
    assert_eq!(check(&json, "settings")["status"], "ok", "{json}");
    assert_eq!(check(&json, "php")["status"], "fail", "{json}");
    assert!(check(&json, "php")["detail"].as_str().is_some_and(|d| d.contains("/nonexistent/php")), "{json}");

    let dir = functions(&[HELLO, ("fastfn.toml", "[defaults]\ntimeout = 5\n")]);
    let run = doctor(&["--json", dir.path().to_str().expect("utf-8 path"), "--listen", &listen()], |_| {});
    let json = run.json();
    assert_eq!(run.code, 1, "{json}");
    let settings = check(&json, "settings");
    assert_eq!(settings["status"], "fail", "{json}");
    assert!(settings["detail"].as_str().is_some_and(|d| d.contains("fastfn.toml") && d.contains("unknown key `defaults.timeout`")), "{settings}");
    assert_eq!(check(&json, "nginx")["status"], "ok", "the other checks still ran: {json}");
}
