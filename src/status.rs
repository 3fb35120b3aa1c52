//! `fastfn status`: finds a running instance by its run dir, asks its supervisor over the control socket (which
//! answers even while every worker is busy) and prints a table, or the JSON object with a schema version. Exit codes
//! follow LSB / systemctl: 0 all ready, 1 degraded, 3 not running, 4 no such instance.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};

/// Bumped when a field of `status --json` changes meaning or goes away (new fields do not bump it).
pub const SCHEMA_VERSION: u32 = 1;
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

pub mod code {
    pub const READY: i32 = 0;
    pub const DEGRADED: i32 = 1;
    pub const NOT_RUNNING: i32 = 3;
    pub const NO_SUCH_INSTANCE: i32 = 4;
}

/// What `status` found: the instance's run dir, and its answer when it runs.
pub enum Found {
    NoSuchInstance(String),
    NotRunning(PathBuf),
    Running(Value),
}

/// The run dir to ask: the one for `listen` when given, else the only instance under `base` (or the default address's).
pub fn locate(base: &Path, listen: Option<SocketAddr>) -> Result<PathBuf, String> {
    if let Some(listen) = listen {
        let dir = base.join(crate::rundir::instance_name(listen));
        return if dir.is_dir() { Ok(dir) } else { Err(format!("no instance for {listen} under {}", base.display())) };
    }
    let mut instances: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("supervisor.lock").exists() || p.join("ctl.sock").exists()).collect())
        .unwrap_or_default();
    instances.sort();
    let running: Vec<&PathBuf> = instances.iter().filter(|p| p.join("ctl.sock").exists()).collect();
    match (running.as_slice(), instances.as_slice()) {
        ([one], _) => Ok((*one).clone()),
        ([], [one]) => Ok(one.clone()),
        ([], []) => Err(format!("no instance under {}", base.display())),
        (_, _) => Err(format!(
            "several instances under {}: pick one with --listen ({})",
            base.display(),
            instances.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Sends one control-socket request (`{"op": op}`) to the supervisor of the instance in `run_dir`; its reply.
pub async fn call(run_dir: &Path, op: &str, timeout: Duration) -> Result<Map<String, Value>, String> {
    let socket = run_dir.join("ctl.sock");
    let query = async {
        let mut stream = tokio::net::UnixStream::connect(&socket).await.map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
        let mut request = Map::new();
        request.insert("op".into(), json!(op));
        crate::frame::write(&mut stream, &request).await.map_err(|e| e.to_string())?;
        crate::frame::read(&mut stream, crate::frame::MAX_CONTROL_FRAME).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, query).await.map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
}

/// Asks the supervisor of the instance in `run_dir` for its status.
pub async fn ask(run_dir: &Path) -> Found {
    match call(run_dir, "status", ASK_TIMEOUT).await.map(|reply| reply.get("status").cloned()) {
        Ok(Some(status)) => Found::Running(status),
        // No socket, or nobody behind it: the instance is stopped (a stale run dir).
        _ => Found::NotRunning(run_dir.to_path_buf()),
    }
}

/// The exit code for what was found.
pub fn exit_code(found: &Found) -> i32 {
    match found {
        Found::NoSuchInstance(_) => code::NO_SUCH_INSTANCE,
        Found::NotRunning(_) => code::NOT_RUNNING,
        Found::Running(status) if status["status"] == "ok" => code::READY,
        Found::Running(_) => code::DEGRADED,
    }
}

/// `status --json`: the supervisor's snapshot under a schema version, or the state when it does not run.
pub fn to_json(found: &Found) -> Value {
    match found {
        Found::NoSuchInstance(why) => json!({"schema": SCHEMA_VERSION, "state": "no-such-instance", "error": why}),
        Found::NotRunning(dir) => json!({"schema": SCHEMA_VERSION, "state": "not-running", "run_dir": dir}),
        Found::Running(status) => {
            let mut object = json!({"schema": SCHEMA_VERSION, "state": "running", "version": env!("CARGO_PKG_VERSION")});
            if let (Some(out), Some(fields)) = (object.as_object_mut(), status.as_object()) {
                for (key, value) in fields {
                    out.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            object
        }
    }
}

/// Whether the table may use colour: stdout is a terminal and NO_COLOR (no-color.org) is unset or empty.
pub fn colour_wanted() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A state word in its colour (green good, yellow passing trouble, red needs a person), padded to `width` first.
fn paint(word: &str, width: usize, colour: bool) -> String {
    let padded = format!("{word:<width$}");
    let code = match word {
        "ok" | "running" | "in-nginx" => "32",
        "degraded" | "backoff" => "33",
        "failed" | "config-error" => "31",
        _ => return padded,
    };
    if colour {
        format!("\x1b[{code}m{padded}\x1b[0m")
    } else {
        padded
    }
}

fn mib(bytes: &Value) -> String {
    bytes.as_u64().map_or_else(|| "-".into(), |b| format!("{:.1}M", b as f64 / (1024.0 * 1024.0)))
}

fn cpu(ms: &Value) -> String {
    ms.as_u64().map_or_else(|| "-".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0))
}

/// The table for a terminal; `colour` paints the state words.
pub fn to_table(found: &Found, colour: bool) -> String {
    let status = match found {
        Found::NoSuchInstance(why) => return format!("fastfn: not found ({why})\n"),
        Found::NotRunning(dir) => return format!("fastfn: not running (stale run dir {})\n", dir.display()),
        Found::Running(status) => status,
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let exit = |v: &Value| match (v["kind"].as_str(), v["value"].as_i64()) {
        (Some("exit"), Some(code)) => format!("exit {code}"),
        (Some("signal"), Some(sig)) => format!("signal {sig}"),
        _ => "-".into(),
    };
    let mut out = String::new();
    let overall = text(&status["status"]);
    out.push_str(&format!(
        "fastfn {}  {}  mode {}  pid {}  up {}s  rss {}  cpu {}  listening {}\n",
        env!("CARGO_PKG_VERSION"),
        paint(&overall, overall.len(), colour),
        text(&status["mode"]),
        text(&status["pid"]),
        text(&status["uptime_s"]),
        mib(&status["usage"]["rss_bytes"]),
        cpu(&status["usage"]["cpu_ms"]),
        text(&status["listen"])
    ));
    out.push_str(&format!("functions from {}\n", text(&status["functions_root"])));
    let nginx = &status["nginx"];
    out.push_str(&format!(
        "nginx master pid {}  rss {}  cpu {}  restarts {}  last exit {}\n",
        text(&nginx["pid"]),
        mib(&nginx["usage"]["rss_bytes"]),
        cpu(&nginx["usage"]["cpu_ms"]),
        text(&nginx["restarts"]),
        exit(&nginx["last_exit"])
    ));
    for worker in nginx["workers"].as_array().into_iter().flatten() {
        out.push_str(&format!("  nginx worker pid {}  rss {}  cpu {}\n", text(&worker["pid"]), mib(&worker["rss_bytes"]), cpu(&worker["cpu_ms"])));
    }
    out.push('\n');
    const COLUMNS: usize = 10;
    const STATE: usize = 2;
    let mut rows: Vec<[String; COLUMNS]> = Vec::new();
    for f in status["functions"].as_array().into_iter().flatten() {
        let mut state = text(&f["state"]);
        let mut workers = format!("{}/{}", text(&f["workers"]), text(&f["pool"]));
        if f["runtime"] == "lua" {
            // Lua handlers run inside nginx's workers: no process of their own.
            state = "in-nginx".into();
            workers = "-".into();
        }
        if f["config_error"].is_string() {
            state = "config-error".into();
        }
        let (restarts, last_exit) = (text(&f["restarts"]), exit(&f["last_exit"]));
        let processes = f["processes"].as_array().cloned().unwrap_or_default();
        if processes.is_empty() {
            rows.push([text(&f["name"]), text(&f["runtime"]), state, workers, "-".into(), "-".into(), "-".into(), "-".into(), restarts, last_exit]);
            continue;
        }
        // One row per worker process of the pool; the function's own columns only on the first.
        for (i, p) in processes.iter().enumerate() {
            let (pid, up, rss, used) = (text(&p["pid"]), format!("{}s", text(&p["uptime_s"])), mib(&p["rss_bytes"]), cpu(&p["cpu_ms"]));
            if i == 0 {
                rows.push([text(&f["name"]), text(&f["runtime"]), state.clone(), workers.clone(), pid, up, rss, used, restarts.clone(), last_exit.clone()]);
            } else {
                rows.push([String::new(), String::new(), String::new(), String::new(), pid, up, rss, used, String::new(), String::new()]);
            }
        }
    }
    let header = ["FUNCTION", "RUNTIME", "STATE", "WORKERS", "PID", "UPTIME", "RSS", "CPU", "RESTARTS", "LAST EXIT"].map(String::from);
    let widths: Vec<usize> = (0..COLUMNS).map(|i| rows.iter().chain(std::iter::once(&header)).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for (n, row) in std::iter::once(&header).chain(rows.iter()).enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| if i == STATE && n > 0 { paint(cell, *w, colour) } else { format!("{cell:<w$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let sandbox = &status["sandbox"];
    out.push_str(&format!(
        "\nsandbox: seccomp {}  landlock ABI {}  strict fs {}  user {}\n",
        text(&sandbox["seccomp"]),
        text(&sandbox["landlock_abi"]),
        text(&sandbox["strict_fs"]),
        text(&sandbox["user"])
    ));
    if let Some(last) = status["reload"]["last"].as_object() {
        out.push_str(&format!("last reload: {} {}\n", text(&last["at"].clone()), if last["ok"] == true { "ok".to_string() } else { format!("failed: {}", text(&last["error"])) }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_pool_worker_and_colours_only_when_asked() {
        let status = json!({"status": "degraded", "usage": {"rss_bytes": 3_145_728, "cpu_ms": 1500}, "nginx": {"pid": 10, "workers": [{"pid": 11, "rss_bytes": 1_048_576, "cpu_ms": 10}]},
            "functions": [{"name": "a/handler.py", "runtime": "python", "state": "running", "workers": 2, "pool": 2, "restarts": 0,
                "processes": [{"pid": 21, "uptime_s": 5, "rss_bytes": 2_097_152, "cpu_ms": 250}, {"pid": 22, "uptime_s": 4, "rss_bytes": 1_048_576, "cpu_ms": 0}]},
                {"name": "b/handler.py", "runtime": "node", "state": "failed", "workers": 0, "pool": 1, "restarts": 5, "processes": []}]});
        let plain = to_table(&Found::Running(status.clone()), false);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.contains("rss 3.0M  cpu 1.50s") && plain.contains("nginx worker pid 11  rss 1.0M"), "{plain}");
        let lines: Vec<&str> = plain.lines().collect();
        let first = lines.iter().position(|l| l.starts_with("a/handler.py")).expect("row a");
        assert!(lines[first].contains("21") && lines[first].contains("2.0M") && lines[first].contains("0.25s"), "{plain}");
        assert!(lines[first + 1].trim_start().starts_with("22"), "the pool's second worker has its own row: {plain}");
        let coloured = to_table(&Found::Running(status), true);
        assert!(coloured.contains("\x1b[31mfailed") && coloured.contains("\x1b[33mdegraded"), "{coloured}");
    }

    #[test]
    fn exit_codes_follow_lsb() {
        assert_eq!(exit_code(&Found::Running(json!({"status": "ok"}))), 0);
        assert_eq!(exit_code(&Found::Running(json!({"status": "degraded"}))), 1);
        assert_eq!(exit_code(&Found::NotRunning(PathBuf::from("/x"))), 3);
        assert_eq!(exit_code(&Found::NoSuchInstance("none".into())), 4);
    }

    #[test]
    fn locate_picks_the_only_instance_or_asks_for_one() {
        let base = tempfile::tempdir().expect("temp dir");
        assert!(locate(base.path(), None).is_err());
        std::fs::create_dir_all(base.path().join("127.0.0.1-8080")).expect("mkdir");
        std::fs::write(base.path().join("127.0.0.1-8080/supervisor.lock"), "").expect("lock");
        assert_eq!(locate(base.path(), None).expect("one"), base.path().join("127.0.0.1-8080"));
        std::fs::create_dir_all(base.path().join("127.0.0.1-9090")).expect("mkdir");
        std::fs::write(base.path().join("127.0.0.1-9090/supervisor.lock"), "").expect("lock");
        assert!(locate(base.path(), None).expect_err("two").contains("--listen"));
        let listen: SocketAddr = "127.0.0.1:9090".parse().expect("addr");
        assert_eq!(locate(base.path(), Some(listen)).expect("by address"), base.path().join("127.0.0.1-9090"));
        assert!(locate(base.path(), Some("127.0.0.1:1".parse().expect("addr"))).is_err());
    }
}
