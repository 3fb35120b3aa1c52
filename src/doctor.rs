//! `fastfn doctor`: the pre-flight checks an operator runs before `fastfn run --native`. Each check is named, says
//! `ok`, `warn` or `fail`, what it found (path, version) and, when something is wrong, what fixes it. Every check
//! runs even when an earlier one failed. Rendered as one line per check for humans, or as a versioned JSON object.
//!
//! What counts as a failure is what would stop `fastfn run --native` from serving (no nginx, a runtime missing or
//! too old, the port taken, a broken `fn.config.json`, workers that could not start under seccomp); what only
//! weakens the stack is a warning (no Landlock, `nobody` as the service user).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde::Serialize;

use crate::binaries;
use crate::cli::DoctorArgs;
use crate::config::{self, env};
use crate::config_file::{self, Sources};
use crate::discover::{self, Discovery};
use crate::types::Runtime;

/// Bumped only when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;
/// How long a `--version` command may take before it counts as not running.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const USERADD_HINT: &str = "useradd --system --no-create-home --shell /usr/sbin/nologin fastfn";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>) -> Check {
        Check { name: name.to_string(), status, detail: detail.into(), hint: None, path: None, version: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }

    fn path(mut self, path: impl Into<PathBuf>) -> Check {
        self.path = Some(path.into());
        self
    }
}

/// A version as `major.minor.patch`; what a `--version` line says, compared against the minimum a worker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first version number in a `--version` output: `Python 3.11.2`, `v18.19.0`, `PHP 8.2.7-1~deb12u1 (cli)`,
/// `go version go1.19.8 linux/amd64`, `3.12.0rc1`, `devel go1.23-abc`. A word counts when, after an optional `go`
/// or `v` prefix, it is digits, a dot, and a component that starts with a digit.
pub fn parse_version(text: &str) -> Option<Version> {
    text.split_whitespace().find_map(|word| {
        let word = word.strip_prefix("go").unwrap_or(word);
        let word = word.strip_prefix('v').unwrap_or(word);
        let mut parts = word.split('.');
        let major = parts.next().filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()?;
        let minor = leading_number(parts.next()?)?;
        let patch = parts.next().and_then(leading_number).unwrap_or(0);
        Some(Version(major, minor, patch))
    })
}

fn leading_number(part: &str) -> Option<u32> {
    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The oldest version each runtime's worker (or, for Go, the handler build) supports.
pub fn minimum_version(runtime: Runtime) -> Option<Version> {
    match runtime {
        Runtime::Python => Some(Version(3, 10, 0)),
        Runtime::Node => Some(Version(18, 0, 0)),
        Runtime::Php => Some(Version(8, 0, 0)),
        Runtime::Go => Some(Version(1, 19, 0)),
        Runtime::Lua | Runtime::Rust => None,
    }
}

/// `fastfn doctor`: runs every check, prints them, returns the exit code (0 none failed, 1 one did, 2 bad flag).
pub fn command(args: &DoctorArgs) -> i32 {
    // fastfn.toml (--config, or the folder's) counts like it does for `run`; a broken one is a failed check.
    let root = std::fs::canonicalize(&args.dir).ok();
    let loaded = config_file::locate(args.config.as_deref(), root.as_deref()).map_err(|e| vec![e]).and_then(|path| match path {
        Some(path) => config_file::load(&path).map(Some),
        None => Ok(None),
    });
    let (sources, settings_file) = match loaded {
        Ok(Some(file)) => {
            let detail = format!("{} is valid", file.path.display());
            (Sources::new(Some(file)), Check::new("settings", Status::Ok, detail))
        }
        Ok(None) => (Sources::new(None), Check::new("settings", Status::Ok, "no fastfn.toml: environment and defaults")),
        Err(problems) => (Sources::new(None), Check::new("settings", Status::Fail, problems.join("; ")).hint("fix the named keys (see `fastfn config show` and docs/cli.md)")),
    };
    let listen = match args.listen.as_deref() {
        Some(flag) => match config::parse_listen(Some(flag), None, None) {
            Ok(addr) => Ok(addr),
            Err(why) => {
                eprintln!("error: {why}");
                return 2;
            }
        },
        // A bad FN_HOST_BIND/FN_HOST_PORT is something doctor diagnoses (the port check fails), not a usage error.
        None => config::listen_from(None, &sources),
    };
    let mut checks = vec![settings_file];
    checks.extend(run(&args.dir, listen, &sources));
    if args.json {
        println!("{}", to_json(&checks));
    } else {
        print!("{}", to_text(&checks, crate::status::colour_wanted()));
    }
    exit_code(&checks)
}

/// Every check, in the order they are shown.
pub fn run(dir: &Path, listen: Result<SocketAddr, String>, sources: &Sources) -> Vec<Check> {
    let as_root = nix::unistd::Uid::effective().is_root();
    let worker_user = if as_root { Some(worker_user(sources)) } else { None };
    let runs_as = worker_user.as_ref().and_then(|(check, user)| user.clone().filter(|_| check.status != Status::Fail));
    let discovery = discover_folder(dir);

    let mut checks = vec![nginx(sources)];
    for runtime in [Runtime::Python, Runtime::Node, Runtime::Php, Runtime::Go] {
        let used = discovery.as_ref().map(|d| d.functions.iter().filter(|f| f.runtime == runtime).count()).unwrap_or(0);
        checks.push(interpreter(sources, runtime, as_root, runs_as.as_ref(), used));
    }
    checks.push(port(listen));
    checks.extend(functions(dir, &discovery));
    checks.push(landlock());
    checks.push(seccomp());
    match worker_user {
        Some((check, _)) => {
            checks.push(check);
            checks.push(gateway_user(sources));
        }
        None => checks.push(unprivileged()),
    }
    checks
}

pub fn exit_code(checks: &[Check]) -> i32 {
    i32::from(checks.iter().any(|c| c.status == Status::Fail))
}

pub fn to_json(checks: &[Check]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        schema: u32,
        ok: bool,
        checks: &'a [Check],
    }
    let report = Report { schema: SCHEMA_VERSION, ok: exit_code(checks) == 0, checks };
    serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"schema\":{SCHEMA_VERSION},\"ok\":false,\"error\":\"{e}\"}}"))
}

/// One line per check (`ok   nginx        /usr/sbin/nginx 1.22.1 + lua module`), then a summary line.
pub fn to_text(checks: &[Check], colour: bool) -> String {
    let mut out = String::new();
    for check in checks {
        let (label, code) = match check.status {
            Status::Ok => ("ok", "32"),
            Status::Warn => ("warn", "33"),
            Status::Fail => ("FAIL", "31"),
        };
        let label = if colour { format!("\x1b[{code}m{label:<4}\x1b[0m") } else { format!("{label:<4}") };
        out.push_str(&format!("{label} {:<12} {}", check.name, check.detail));
        if let Some(hint) = &check.hint {
            out.push_str(&format!("  → hint: {hint}"));
        }
        out.push('\n');
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    let verdict = if fails == 0 { "ready for `fastfn run --native`" } else { "not ready for `fastfn run --native`" };
    out.push_str(&format!("{} ok, {warns} warning(s), {fails} failure(s): {verdict}\n", count(Status::Ok)));
    out
}

fn nginx(sources: &Sources) -> Check {
    match binaries::find_nginx(sources.get(env::OPENRESTY_BIN).as_deref()) {
        Ok(found) => {
            let flavor = match found.flavor {
                binaries::NginxFlavor::OpenResty => "(OpenResty, Lua built in)",
                binaries::NginxFlavor::StockWithLuaModule => "+ lua module",
            };
            // `nginx/1.22.1`, `openresty/1.25.3.1`: the name is in the detail already.
            let version = found.version.rsplit('/').next().unwrap_or(&found.version).to_string();
            let mut check = Check::new("nginx", Status::Ok, format!("{} {version} {flavor}", found.binary.display())).path(&found.binary);
            check.version = Some(version);
            check
        }
        Err(e) => Check::new("nginx", Status::Fail, e.to_string()).hint(e.hint()),
    }
}

/// An interpreter: found, its version new enough, and (as root) runnable by the service user; says how many
/// functions use it.
fn interpreter(sources: &Sources, runtime: Runtime, as_root: bool, runs_as: Option<&config::ServiceUser>, used: usize) -> Check {
    let mut check = find_and_run(sources, runtime, as_root, runs_as);
    check.detail.push_str(&match used {
        0 => "; no function uses it".to_string(),
        1 => "; 1 function uses it".to_string(),
        n => format!("; {n} functions use it"),
    });
    check
}

fn find_and_run(sources: &Sources, runtime: Runtime, as_root: bool, runs_as: Option<&config::ServiceUser>) -> Check {
    let name = runtime.as_str();
    let (override_var, version_args): (&str, &[&str]) = match runtime {
        Runtime::Python => (env::PYTHON_BIN, &["--version"]),
        Runtime::Node => (env::NODE_BIN, &["--version"]),
        Runtime::Php => (env::PHP_BIN, &["--version"]),
        _ => (env::GO_BIN, &["version"]),
    };
    // Go is a toolchain the supervisor runs itself (outside the sandbox); the others run as the service user.
    let service_user_runs_it = runtime != Runtime::Go;
    let path = match binaries::find_interpreter(runtime, sources.get(override_var).as_deref(), as_root && service_user_runs_it) {
        Ok(path) => path,
        Err(e) => return Check::new(name, Status::Fail, e.to_string()).hint(e.hint()),
    };
    let shown = format!("{} {version_args_joined}", path.display(), version_args_joined = version_args.join(" "));
    let output = match output_within(version_command(&path, version_args), COMMAND_TIMEOUT) {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            return Check::new(name, Status::Fail, format!("`{shown}` failed ({}): {}", out.status, first_line(&out)))
                .hint(format!("fix or reinstall it, or set {override_var}"))
                .path(&path)
        }
        Err(why) => return Check::new(name, Status::Fail, format!("cannot run `{shown}`: {why}")).hint(format!("set {override_var}")).path(&path),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let version = parse_version(&text);
    let mut check = match (version, minimum_version(runtime)) {
        (Some(found), Some(min)) if found < min => Check::new(name, Status::Fail, format!("{} is {name} {found}, older than the {min} fastfn needs", path.display()))
            .hint(format!("install a newer {name}, or set {override_var} to one")),
        (Some(found), _) => Check::new(name, Status::Ok, format!("{} {found}", path.display())),
        (None, _) => Check::new(name, Status::Warn, format!("{}: cannot tell its version from `{shown}`: {}", path.display(), first_line(&output))),
    };
    check.version = version.map(|v| v.to_string());
    check.path = Some(path.clone());
    if check.status == Status::Fail {
        return check;
    }
    if !service_user_runs_it {
        if as_root {
            check.detail.push_str(", run by the supervisor to build handlers");
        }
        return check;
    }
    let Some(user) = runs_as else { return check };
    let mut as_user = version_command(&path, version_args);
    {
        use std::os::unix::process::CommandExt;
        // std sets the gid, clears the supplementary groups and sets the uid in the child, as for workers.
        as_user.uid(user.uid).gid(user.gid);
    }
    match output_within(as_user, COMMAND_TIMEOUT) {
        Ok(out) if out.status.success() => {
            check.detail.push_str(&format!(", runs as {}", user.name));
            check
        }
        Ok(out) => Check { status: Status::Fail, detail: format!("{}: the service user `{}` cannot run it ({}): {}", path.display(), user.name, out.status, first_line(&out)), ..check }
            .hint(format!("install {name} where other users can run it (not under /root), or set {override_var} to such a binary")),
        Err(why) => Check { status: Status::Fail, detail: format!("{}: the service user `{}` cannot run it: {why}", path.display(), user.name), ..check }
            .hint(format!("install {name} where other users can run it (not under /root), or set {override_var} to such a binary")),
    }
}

fn version_command(path: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(path);
    // A folder the service user cannot enter (root's home) must not be where it starts.
    command.args(args).current_dir("/").stdin(std::process::Stdio::null());
    command
}

/// Runs a command and collects its output, killing it when it takes longer than `limit`.
fn output_within(mut command: Command, limit: Duration) -> Result<Output, String> {
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = command.spawn().map_err(|e| e.to_string())?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).map_err(|e| e.to_string())?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => {
            // Not reaped yet (its waiter still holds it), so the pid is still this child's.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = rx.recv();
            Err(format!("no answer within {} s", limit.as_secs()))
        }
    }
}

fn first_line(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no output").to_string()
}

fn port(listen: Result<SocketAddr, String>) -> Check {
    let addr = match listen {
        Ok(addr) => addr,
        Err(why) => return Check::new("port", Status::Fail, why).hint("set FN_HOST_BIND to an IP address and FN_HOST_PORT to 1-65535, or pass --listen ADDR:PORT"),
    };
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Check::new("port", Status::Ok, format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::new("port", Status::Fail, format!("{addr} is in use by another program"))
            .hint(format!("pick another address with --listen ADDR:PORT, or see whether fastfn already runs there: `fastfn status --listen {addr}`")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Check::new("port", Status::Fail, format!("cannot listen on {addr}: {e}"))
            .hint("ports below 1024 need root (or CAP_NET_BIND_SERVICE): use --listen with a port ≥ 1024"),
        Err(e) => Check::new("port", Status::Fail, format!("cannot listen on {addr}: {e}")).hint("pass an address of this host with --listen ADDR:PORT"),
    }
}

fn discover_folder(dir: &Path) -> Result<Discovery, String> {
    let root = std::fs::canonicalize(dir).map_err(|e| format!("functions folder `{}`: {e}", dir.display()))?;
    discover::discover_with(&root, discover::Options::default()).map_err(|e| e.to_string())
}

/// The folder and discovery, then one `config` failure per invalid `fn.config.json`, one `routes` failure per
/// conflicting route, and a `functions` warning for anything else discovery had to say.
fn functions(dir: &Path, discovery: &Result<Discovery, String>) -> Vec<Check> {
    let found = match discovery {
        Ok(found) => found,
        Err(why) => {
            return vec![Check::new("functions", Status::Fail, why.clone()).hint("pass the functions folder: `fastfn doctor path/to/functions`")];
        }
    };
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let folder = if found.functions.is_empty() {
        Check::new("functions", Status::Warn, format!("no functions in {}", root.display())).hint(format!("write one: `fastfn init hello --dir {}`", dir.display()))
    } else {
        Check::new("functions", Status::Ok, format!("{} function(s), {} route(s) in {}", found.functions.len(), found.routes.len(), root.display()))
    };
    let mut checks = vec![folder.path(&root)];

    let mut config_errors: Vec<&str> = Vec::new();
    for function in &found.functions {
        let Some(error) = function.config_error.as_deref() else { continue };
        if config_errors.contains(&error) {
            continue;
        }
        config_errors.push(error);
        let mut check = Check::new("config", Status::Fail, error).hint("fix the file; until then its functions answer 503 `function misconfigured`");
        let file = function.dir.join(crate::fnconfig::FILE_NAME);
        if file.is_file() {
            check.path = Some(file);
        }
        checks.push(check);
    }
    for conflict in &found.conflicts {
        let needle = format!("route `{conflict}` ");
        let detail = found.warnings.iter().find(|w| w.starts_with(&needle)).cloned().unwrap_or_else(|| format!("route `{conflict}` is claimed by two functions: it answers 409"));
        checks.push(Check::new("routes", Status::Fail, detail).hint("rename or move one of the two functions (or give one an explicit route in its fn.config.json)"));
    }
    for warning in &found.warnings {
        if config_errors.iter().any(|e| warning.starts_with(e)) || checks.iter().any(|c| c.detail == *warning) {
            continue;
        }
        // Discovery's own wording for an invalid fn.config.json that no listed function carries (a parent's).
        if warning.ends_with("answer 503 until it is fixed") {
            checks.push(Check::new("config", Status::Fail, warning.clone()).hint("fix the file"));
        } else {
            checks.push(Check::new("functions", Status::Warn, warning.clone()));
        }
    }
    checks
}

fn landlock() -> Check {
    let abi = crate::sandbox::landlock_abi();
    if abi > 0 {
        return Check::new("landlock", Status::Ok, format!("ABI {abi}: each worker is confined to its own folder and tmp"));
    }
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").map(|l| format!(" (active LSMs: {})", l.trim())).unwrap_or_default();
    Check::new("landlock", Status::Warn, format!("not available: functions run without filesystem confinement{lsm}"))
        .hint("use Linux ≥ 5.13 with `landlock` in the LSM list (CONFIG_LSM, or the lsm= boot parameter)")
}

fn seccomp() -> Check {
    let builds_filter = match crate::sandbox::PreparedSandbox::prepare(&crate::sandbox::Limits::default(), false) {
        Ok(prepared) => prepared.seccomp,
        Err(e) => return Check::new("seccomp", Status::Fail, e.to_string()),
    };
    if !builds_filter {
        return Check::new("seccomp", Status::Warn, format!("this build has no seccomp filter for {}: workers run without one", std::env::consts::ARCH));
    }
    // SECCOMP_GET_ACTION_AVAIL for SECCOMP_RET_ERRNO, the action the filter uses: 0 means the kernel has filters.
    let action: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: seccomp(SECCOMP_GET_ACTION_AVAIL) only reads the u32 we pass; it changes nothing.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_ACTION_AVAIL, 0u32, &action as *const u32) };
    if rc == 0 {
        Check::new("seccomp", Status::Ok, "filters available: each worker is denied dangerous syscalls")
    } else {
        let why = std::io::Error::last_os_error();
        Check::new("seccomp", Status::Fail, format!("the kernel refuses seccomp filters ({why}): function workers cannot start"))
            .hint("use a kernel built with CONFIG_SECCOMP_FILTER=y (every mainstream distribution kernel is)")
    }
}

/// As root: the user function workers drop to (FN_USER, else `fastfn`, else `nobody`, as `config` resolves it).
fn worker_user(sources: &Sources) -> (Check, Option<config::ServiceUser>) {
    let shown = |u: &config::ServiceUser| format!("function workers run as {} (uid {})", u.name, u.uid);
    match sources.get(env::USER) {
        Some(name) => match config::lookup_user(&name) {
            None => (Check::new("user", Status::Fail, format!("{} `{name}` is not a user on this system", env::USER)).hint(format!("create it (useradd --system --no-create-home --shell /usr/sbin/nologin {name}) or unset {}", env::USER)), None),
            Some(user) if user.uid == 0 => (Check::new("user", Status::Fail, format!("{} `{name}` is root: function workers must run as an unprivileged user", env::USER)).hint(format!("unset {} and {USERADD_HINT}", env::USER)), Some(user)),
            Some(user) => (Check::new("user", Status::Ok, shown(&user)), Some(user)),
        },
        None => match config::lookup_user("fastfn").filter(|u| u.uid != 0) {
            Some(user) => (Check::new("user", Status::Ok, shown(&user)), Some(user)),
            None => match config::lookup_user("nobody") {
                Some(user) => (Check::new("user", Status::Warn, format!("no `fastfn` user: {}, which other services share", shown(&user))).hint(USERADD_HINT), Some(user)),
                None => (Check::new("user", Status::Fail, "neither `fastfn` nor `nobody` exists for function workers").hint(format!("{USERADD_HINT}, or set {}", env::USER)), None),
            },
        },
    }
}

/// As root: the user nginx workers run as (FN_GATEWAY_USER, else `www-data`, else `nobody`).
fn gateway_user(sources: &Sources) -> Check {
    let wanted = sources.get(env::GATEWAY_USER);
    let candidates: Vec<String> = match &wanted {
        Some(name) => vec![name.clone()],
        None => vec!["www-data".into(), "nobody".into()],
    };
    match candidates.iter().find_map(|name| config::lookup_user(name)) {
        Some(user) if user.uid == 0 => Check::new("gateway-user", Status::Warn, format!("nginx workers would run as {} (uid 0)", user.name)).hint(format!("set {} to an unprivileged user (www-data)", env::GATEWAY_USER)),
        Some(user) => Check::new("gateway-user", Status::Ok, format!("nginx workers run as {} (uid {})", user.name, user.uid)),
        None => match wanted {
            Some(name) => Check::new("gateway-user", Status::Fail, format!("{} `{name}` is not a user on this system", env::GATEWAY_USER)).hint(format!("create it, or unset {}", env::GATEWAY_USER)),
            None => Check::new("gateway-user", Status::Fail, "neither `www-data` nor `nobody` exists for the gateway").hint(format!("set {}", env::GATEWAY_USER)),
        },
    }
}

/// Not root: nothing is switched, everything runs as the caller.
fn unprivileged() -> Check {
    let uid = nix::unistd::Uid::effective();
    let name = nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"));
    Check::new("user", Status::Ok, format!("runs as {name}, no privilege drop (started as root, workers would run as FN_USER)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_every_runtime_s_output() {
        assert_eq!(parse_version("Python 3.11.2\n"), Some(Version(3, 11, 2)));
        assert_eq!(parse_version("v18.19.0"), Some(Version(18, 19, 0)));
        assert_eq!(parse_version("PHP 8.2.7-1~deb12u1 (cli) (built: Nov 18 2026 20:02:04) (NTS)\nCopyright (c) The PHP Group"), Some(Version(8, 2, 7)));
        assert_eq!(parse_version("go version go1.19.8 linux/amd64"), Some(Version(1, 19, 8)));
        assert_eq!(parse_version("go version devel go1.23-abc123 linux/amd64"), Some(Version(1, 23, 0)));
        assert_eq!(parse_version("Python 3.12.0rc1"), Some(Version(3, 12, 0)));
    }

    #[test]
    fn words_that_are_not_versions_are_skipped() {
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("command not found"), None);
        assert_eq!(parse_version("built: 20:02:04 linux/amd64 .5 x.1"), None);
    }

    #[test]
    fn minimums_compare_by_component() {
        let python = minimum_version(Runtime::Python).expect("python has one");
        assert!(Version(3, 9, 18) < python);
        assert!(Version(3, 10, 0) >= python);
        assert!(Version(3, 11, 2) > python, "3.11 is newer than 3.10, not older as a string compare would say");
        assert!(Version(1, 18, 10) < minimum_version(Runtime::Go).expect("go has one"));
    }

    #[test]
    fn text_has_no_colour_unless_asked_and_json_has_the_schema() {
        let checks = vec![Check::new("php", Status::Fail, "not found").hint("apt-get install -y php-cli"), Check::new("nginx", Status::Ok, "/usr/sbin/nginx")];
        let plain = to_text(&checks, false);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.starts_with("FAIL php"), "{plain}");
        assert!(plain.contains("→ hint: apt-get install -y php-cli"), "{plain}");
        assert!(to_text(&checks, true).contains("\x1b[31m"));
        let json: serde_json::Value = serde_json::from_str(&to_json(&checks)).expect("json");
        assert_eq!(json["schema"], 1);
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][0]["status"], "fail");
        assert!(json["checks"][1].get("hint").is_none());
        assert_eq!(exit_code(&checks), 1);
        assert_eq!(exit_code(&checks[1..]), 0);
    }
}
