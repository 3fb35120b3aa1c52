//! `fastfn service`: the systemd unit that runs `fastfn run --native DIR` as a service (systemd ≥ 252, Debian 12),
//! printed (`unit`) or written into place (`install`). Rendering is a pure function of [`UnitOptions`]; every line
//! that is not obvious carries a comment in the unit itself. docs/systemd.md explains the hardening.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::cli::{ServiceInstallArgs, ServiceUnitArgs};

/// Exit codes of `fastfn service` (the same meanings as the rest of the CLI).
pub mod code {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
}

/// Default `FN_SHUTDOWN_GRACE_MS` of the supervisor (config.rs).
const DEFAULT_GRACE_MS: u64 = 10_000;
/// After the grace the supervisor gives function workers 1 s, then kills by process group; the rest is margin.
const STOP_MARGIN_S: u64 = 20;

/// Variables the unit sets itself, each tied to another line of it; `--env` may not set them.
const RESERVED: [(&str, &str); 6] = [
    ("FN_USER", "use --user"),
    ("FN_HOST_BIND", "use --listen"),
    ("FN_HOST_PORT", "use --listen"),
    ("FN_RUN_DIR", "the unit sets it to its RuntimeDirectory (/run/NAME), which ReadWritePaths lists"),
    ("FN_GO_CACHE_DIR", "the unit sets it to its CacheDirectory (/var/cache/NAME), which ReadWritePaths lists"),
    ("FN_ADMIN_TOKEN", "a unit file is world-readable: put the token in a root-only file and pass FN_ADMIN_TOKEN_FILE=PATH"),
];

/// Everything the unit depends on, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOptions {
    /// The absolute path of the fastfn binary ExecStart runs.
    pub exe: PathBuf,
    /// The absolute functions folder.
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// The unit's name without `.service`; also the name of its run and cache dirs.
    pub name: String,
    /// The unprivileged user function workers drop to (FN_USER).
    pub user: String,
    /// Extra `Environment=` lines, in the order given.
    pub env: Vec<(String, String)>,
}

impl UnitOptions {
    /// Validates the command line. The functions folder is made absolute (and resolved when it exists).
    pub fn from_args(args: &ServiceUnitArgs, exe: PathBuf) -> Result<UnitOptions, String> {
        let mut problems = Vec::new();
        let name = args.name.strip_suffix(".service").unwrap_or(&args.name).to_string();
        if name.is_empty() || name.len() > 32 || name.starts_with('-') || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            problems.push(format!("--name `{}` must be 1-32 letters, digits, `-` or `_` (it names the unit, /run/NAME and /var/cache/NAME)", args.name));
        }
        let user = args.user.clone();
        let user_ok = user.len() <= 32
            && user.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !user_ok {
            problems.push(format!("--user `{user}` is not a valid system user name (lowercase letters, digits, `_`, `-`; at most 32)"));
        } else if user == "root" {
            problems.push("--user root: function workers must run as an unprivileged user".to_string());
        }
        let listen = crate::config::parse_listen(Some(&args.listen), None, None).map_err(|e| problems.push(e)).ok();
        let mut env = Vec::new();
        for item in &args.env {
            match parse_env(item) {
                Ok(pair) => env.push(pair),
                Err(why) => problems.push(why),
            }
        }
        if has_control(&args.dir.to_string_lossy()) || has_control(&exe.to_string_lossy()) {
            problems.push("paths with control characters (newlines, tabs) cannot go into a unit file".to_string());
        }
        let dir = absolute(&args.dir).map_err(|e| problems.push(format!("functions folder `{}`: {e}", args.dir.display()))).ok();
        match (problems.is_empty(), listen, dir) {
            (true, Some(listen), Some(dir)) => Ok(UnitOptions { exe, dir, listen, name, user, env }),
            _ => Err(problems.join("\n  ")),
        }
    }

    /// The run base: systemd creates it at each start (RuntimeDirectory=) and fastfn keeps its instance there.
    pub fn run_base(&self) -> PathBuf {
        Path::new("/run").join(&self.name)
    }

    /// The Go compile cache's parent (CacheDirectory=): survives restarts and reboots.
    pub fn cache_dir(&self) -> PathBuf {
        Path::new("/var/cache").join(&self.name)
    }

    /// The drain grace the supervisor will use: `--env FN_SHUTDOWN_GRACE_MS=…`, else its default.
    pub fn grace_ms(&self) -> u64 {
        self.env.iter().find(|(k, _)| k == crate::config::env::SHUTDOWN_GRACE_MS).and_then(|(_, v)| v.trim().parse().ok()).unwrap_or(DEFAULT_GRACE_MS)
    }

    /// TimeoutStopSec in seconds: the grace (rounded up), the workers' second, and a margin.
    pub fn timeout_stop_s(&self) -> u64 {
        self.grace_ms().div_ceil(1000) + STOP_MARGIN_S
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn parse_env(item: &str) -> Result<(String, String), String> {
    let (key, value) = item.split_once('=').ok_or_else(|| format!("--env `{item}` is not KEY=VALUE"))?;
    let key_ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !key_ok {
        return Err(format!("--env `{key}` is not a variable name (letters, digits, `_`)"));
    }
    if let Some((_, why)) = RESERVED.iter().find(|(k, _)| *k == key) {
        return Err(format!("--env {key}: {why}"));
    }
    if has_control(value) {
        return Err(format!("--env {key}: the value contains a control character (newline, tab …)"));
    }
    if key == crate::config::env::SHUTDOWN_GRACE_MS && value.trim().parse::<u64>().is_err() {
        return Err(format!("--env {key} must be a whole number of milliseconds, got `{value}`"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// An absolute path: resolved (symlinks too) when it exists, else made absolute against the current folder.
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) => std::path::absolute(path),
    }
}

/// Under a folder `ProtectHome=yes` makes inaccessible.
fn under_home(path: &Path) -> bool {
    ["/home", "/root", "/run/user"].iter().any(|p| path.starts_with(p))
}

/// Under a folder `PrivateTmp=yes` replaces with an empty one.
fn under_tmp(path: &Path) -> bool {
    ["/tmp", "/var/tmp"].iter().any(|p| path.starts_with(p))
}

/// One argument of an Exec line: `%` and `$` escaped (specifiers, variables), quoted when it has spaces or quotes.
fn exec_arg(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    if escaped.chars().any(|c| c.is_whitespace() || "\"'\\;".contains(c)) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// One `Environment=` assignment: `%` escaped, quoted when it has spaces or quotes.
fn env_assignment(key: &str, value: &str) -> String {
    let pair = format!("{key}={}", value.replace('%', "%%"));
    if pair.chars().any(|c| c.is_whitespace() || "\"'\\".contains(c)) {
        format!("\"{}\"", pair.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        pair
    }
}

/// The unit file.
pub fn render(o: &UnitOptions) -> String {
    let exe = exec_arg(&o.exe.to_string_lossy());
    let dir = o.dir.to_string_lossy();
    let listen = o.listen.to_string();
    let run_base = o.run_base();
    let cache = o.cache_dir();
    let mut u = String::new();
    let mut line = |s: &str| {
        u.push_str(s);
        u.push('\n');
    };
    line(&format!("# {}.service: generated by `fastfn service unit` (fastfn {}), for systemd 252 (Debian 12) and later.", o.name, env!("CARGO_PKG_VERSION")));
    line(&format!("# Regenerate it rather than editing it; put local changes in a drop-in (`systemctl edit {}`).", o.name));
    line("[Unit]");
    line(&format!("Description=fastfn: the functions in {}", dir.replace('%', "%%")));
    line("Wants=network-online.target");
    line("# Dependency installs (pip, npm, composer) at start need the network.");
    line("After=network-online.target nss-lookup.target");
    line("# At most 5 starts in 60 s, then the unit stays failed instead of crash-looping.");
    line("StartLimitIntervalSec=60s");
    line("StartLimitBurst=5");
    line("");
    line("[Service]");
    line("# READY=1 once nginx answers and the warm workers accept; RELOADING=1/READY=1 around reloads; STATUS= counts.");
    line("Type=notify");
    line("NotifyAccess=main");
    line("# No User=: the supervisor starts as root on purpose. It runs nginx's workers as the gateway user (www-data,");
    line("# else nobody; FN_GATEWAY_USER) and every function worker as FN_USER, each worker under no-new-privs, seccomp");
    line("# and Landlock. Started as a plain user it could not drop to others, and workers would share its uid.");
    line("# CapabilityBoundingSet below keeps only what that needs.");
    line(&format!("Environment=FN_USER={}", o.user));
    line(&format!("ExecStart={exe} run --native --listen {listen} {}", exec_arg(&dir)));
    line("# The same reload as SIGHUP, but synchronous: `systemctl reload` fails, and the last good state keeps serving,");
    line("# when the new config is bad.");
    line(&format!("ExecReload={exe} reload --listen {listen}"));
    line("# Start and reload may install dependencies (up to 5 min) and compile Go before READY=1; systemd 252 applies");
    line("# TimeoutStartSec to ExecReload too (`fastfn reload` waits up to 330 s).");
    line("TimeoutStartSec=6min");
    line("# SIGTERM goes to the supervisor only: it drains nginx for FN_SHUTDOWN_GRACE_MS, gives the workers 1 s, then");
    line("# kills by process group. When TimeoutStopSec (grace + 20 s) runs out, the whole control group is SIGKILLed.");
    line("KillMode=mixed");
    line(&format!("TimeoutStopSec={}s", o.timeout_stop_s()));
    line("Restart=on-failure");
    line("RestartSec=2s");
    line("# 78 (EX_CONFIG): invalid configuration; restarting cannot fix it.");
    line("RestartPreventExitStatus=78");
    line("# The run base (instance state, sockets, logs, dependency installs): created at each start, owned by root;");
    line("# kept after a stop so `fastfn logs` still reads it (fastfn clears stale state at the next start).");
    line(&format!("Environment=FN_RUN_DIR={}", run_base.display()));
    line(&format!("RuntimeDirectory={}", o.name));
    line("RuntimeDirectoryMode=0711");
    line("RuntimeDirectoryPreserve=yes");
    line("# The Go compile cache outlives restarts (a cold one costs many seconds per function).");
    line(&format!("Environment=FN_GO_CACHE_DIR={}", cache.join("go-build").display()));
    line(&format!("CacheDirectory={}", o.name));
    line("CacheDirectoryMode=0700");
    for (key, value) in &o.env {
        line(&format!("Environment={}", env_assignment(key, value)));
    }
    line("# nginx has 4096 connections per worker; each worker caps its own files (FN_WORKER_MAX_OPEN_FILES).");
    line("LimitNOFILE=65536");
    line("# Core dumps would hold secrets.");
    line("LimitCORE=0");
    line("");
    line("# Hardening. Checked with `systemd-analyze security NAME`; docs/systemd.md says what each line does.");
    line("NoNewPrivileges=yes");
    line("# The whole filesystem is read-only but for what fastfn writes: its run base and its Go cache. The functions");
    line("# folder stays read-only, so PUT /_fn/function-env and /_fn/function-config fail (deploy files instead).");
    line("ProtectSystem=strict");
    line(&format!("ReadWritePaths={} {}", run_base.display(), cache.display()));
    let home_reason = match (under_home(&o.dir), under_home(&o.exe)) {
        (true, _) => Some("the functions folder"),
        (false, true) => Some("the fastfn binary"),
        _ => None,
    };
    match home_reason {
        Some(what) => {
            line(&format!("# read-only, not yes: {what} is under /home, /root or /run/user, which `yes` would hide."));
            line("ProtectHome=read-only");
        }
        None => line("ProtectHome=yes"),
    }
    let tmp_reason = match (under_tmp(&o.dir), under_tmp(&o.exe)) {
        (true, _) => Some("the functions folder"),
        (false, true) => Some("the fastfn binary"),
        _ => None,
    };
    match tmp_reason {
        Some(what) => {
            line(&format!("# no: {what} is under /tmp or /var/tmp, which a private /tmp would hide. Move it (to /srv, say)"));
            line("# to get PrivateTmp=yes back.");
            line("PrivateTmp=no");
        }
        None => line("PrivateTmp=yes"),
    }
    line("# A minimal /dev (null, zero, random, urandom, tty, shm): all nginx and the workers use.");
    line("PrivateDevices=yes");
    line("ProtectKernelTunables=yes");
    line("ProtectKernelModules=yes");
    line("ProtectKernelLogs=yes");
    line("ProtectControlGroups=yes");
    line("ProtectClock=yes");
    line("ProtectHostname=yes");
    line("RestrictNamespaces=yes");
    line("RestrictRealtime=yes");
    line("RestrictSUIDSGID=yes");
    line("LockPersonality=yes");
    line("# Switch users (setuid, setgid), hand dirs and sockets to them (chown, fowner), manage their files (dac_*)");
    line("# and signal their processes (kill). No CAP_SYS_ADMIN, no CAP_NET_ADMIN, no CAP_SYS_PTRACE.");
    let bind_low = if o.listen.port() < 1024 { " CAP_NET_BIND_SERVICE" } else { "" };
    line(&format!("CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_KILL CAP_SETGID CAP_SETUID{bind_low}"));
    line("# No AF_NETLINK: glibc's getaddrinfo works without it (it then assumes both IPv4 and IPv6 exist).");
    line("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6");
    line("SystemCallArchitectures=native");
    line("# A deny list, returning EPERM: setuid, chown, seccomp and landlock must stay (the workers sandbox themselves,");
    line("# with their own, stricter filter), and systemd 252's @system-service lacks seccomp and landlock_*.");
    line("SystemCallErrorNumber=EPERM");
    line("SystemCallFilter=~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap");
    line("# No MemoryDenyWriteExecute=: LuaJIT (in nginx) and V8 (Node) generate code at run time and crash under it.");
    line("");
    line("[Install]");
    line("WantedBy=multi-user.target");
    u
}

/// `fastfn service unit`: the unit on stdout.
pub fn unit_command(args: &ServiceUnitArgs) -> Result<String, (i32, String)> {
    let options = options(args)?;
    if !options.dir.is_dir() {
        eprintln!("warning: the functions folder {} does not exist (yet); the service will not start without it", options.dir.display());
    }
    warn_weakened(&options);
    Ok(render(&options))
}

fn options(args: &ServiceUnitArgs) -> Result<UnitOptions, (i32, String)> {
    let exe = std::env::current_exe().map_err(|e| (code::FAILURE, format!("cannot find the path of this fastfn binary: {e}")))?;
    UnitOptions::from_args(args, exe).map_err(|why| (code::USAGE, why))
}

fn warn_weakened(options: &UnitOptions) {
    if under_tmp(&options.dir) || under_tmp(&options.exe) {
        eprintln!("warning: the unit has PrivateTmp=no because the functions folder or the fastfn binary is under /tmp");
    }
}

/// `fastfn service install`: as root, writes the unit, creates the worker user and the cache dir, and reloads
/// systemd's configuration. Starts nothing. Returns what it did and the next commands.
pub fn install_command(args: &ServiceInstallArgs) -> Result<String, (i32, String)> {
    let options = options(&args.unit)?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err((
            code::FAILURE,
            format!(
                "`fastfn service install` must run as root (it writes {}, may create the user `{}`, and creates {})\nhint: sudo {} service install …, or `fastfn service unit` to print the unit",
                args.unit_dir.join(format!("{}.service", options.name)).display(),
                options.user,
                options.cache_dir().display(),
                options.exe.display()
            ),
        ));
    }
    if !options.dir.is_dir() {
        return Err((code::FAILURE, format!("the functions folder {} is not a folder", options.dir.display())));
    }
    warn_weakened(&options);
    let text = render(&options);
    let fail = |why: String| (code::FAILURE, why);
    let mut report = Vec::new();

    let path = args.unit_dir.join(format!("{}.service", options.name));
    match std::fs::read_to_string(&path) {
        Ok(old) if old == text => report.push(format!("unchanged {}", path.display())),
        Ok(_) if !args.force => {
            return Err(fail(format!("{} exists and differs from the unit fastfn would write\nhint: compare with `fastfn service unit …`, then add --force to replace it", path.display())));
        }
        existing => {
            std::fs::create_dir_all(&args.unit_dir).map_err(|e| fail(format!("cannot create {}: {e}", args.unit_dir.display())))?;
            crate::catalog::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            set_mode(&path, 0o644).map_err(|e| fail(format!("cannot chmod {}: {e}", path.display())))?;
            report.push(format!("{} {}", if existing.is_ok() { "replaced" } else { "wrote" }, path.display()));
        }
    }

    if nix::unistd::User::from_name(&options.user).ok().flatten().is_some() {
        report.push(format!("user {} exists (function workers run as it)", options.user));
    } else {
        run(std::process::Command::new("useradd").args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", &options.user])).map_err(fail)?;
        report.push(format!("created the system user {} (function workers run as it)", options.user));
    }

    // Written by the supervisor (root) only: the Go compile cache. The run base is created by systemd at each start.
    let go_cache = options.cache_dir().join("go-build");
    for dir in [options.cache_dir(), go_cache.clone()] {
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        crate::rundir::chown(&dir, Some(0), Some(0)).map_err(|e| fail(format!("cannot chown {}: {e}", dir.display())))?;
        set_mode(&dir, 0o700).map_err(|e| fail(format!("cannot chmod {}: {e}", dir.display())))?;
    }
    report.push(format!("prepared {} (root, 0700); systemd creates {} at each start", go_cache.display(), options.run_base().display()));

    if Path::new("/run/systemd/system").is_dir() {
        run(std::process::Command::new("systemctl").arg("daemon-reload")).map_err(fail)?;
        report.push("ran systemctl daemon-reload".to_string());
    } else {
        report.push("systemd is not running here (no /run/systemd/system): run `systemctl daemon-reload` where it is".to_string());
    }
    let name = &options.name;
    let status = if name == "fastfn" { "fastfn status".to_string() } else { format!("fastfn status --run-dir {}", options.run_base().display()) };
    report.push(format!("next:\n  systemctl enable --now {name}\n  systemctl status {name}\n  {status}\n  journalctl -u {name} -f"));
    Ok(report.join("\n"))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Runs a command to completion; its failure carries its output.
fn run(command: &mut std::process::Command) -> Result<(), String> {
    let shown = format!("{} {}", command.get_program().to_string_lossy(), command.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let output = command.stdin(std::process::Stdio::null()).output().map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Err(format!("`{shown}` failed ({}): {}", output.status, text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &str) -> UnitOptions {
        UnitOptions {
            exe: PathBuf::from("/usr/local/bin/fastfn"),
            dir: PathBuf::from(dir),
            listen: "127.0.0.1:8080".parse().expect("addr"),
            name: "fastfn".into(),
            user: "fastfn".into(),
            env: Vec::new(),
        }
    }

    fn args(dir: &str, extra: &[&str]) -> ServiceUnitArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            unit: ServiceUnitArgs,
        }
        let mut argv = vec!["fastfn"];
        argv.extend_from_slice(extra);
        argv.push(dir);
        Wrap::try_parse_from(argv).expect("parse").unit
    }

    fn section<'a>(unit: &'a str, name: &str) -> Vec<&'a str> {
        let header = format!("[{name}]");
        unit.lines().skip_while(|l| *l != header).skip(1).take_while(|l| !l.starts_with('[')).filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
    }

    #[test]
    fn the_unit_has_every_required_line_in_its_section() {
        let unit = render(&options("/srv/functions"));
        let service = section(&unit, "Service");
        for want in [
            "Type=notify",
            "NotifyAccess=main",
            "ExecStart=/usr/local/bin/fastfn run --native --listen 127.0.0.1:8080 /srv/functions",
            "ExecReload=/usr/local/bin/fastfn reload --listen 127.0.0.1:8080",
            "KillMode=mixed",
            "Restart=on-failure",
            "RestartPreventExitStatus=78",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "ReadWritePaths=/run/fastfn /var/cache/fastfn",
            "RuntimeDirectory=fastfn",
            "Environment=FN_RUN_DIR=/run/fastfn",
            "Environment=FN_USER=fastfn",
            "Environment=FN_GO_CACHE_DIR=/var/cache/fastfn/go-build",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "LimitNOFILE=65536",
            "ProtectKernelTunables=yes",
            "ProtectControlGroups=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
        ] {
            assert!(service.contains(&want), "[Service] lacks `{want}`:\n{unit}");
        }
        let unit_section = section(&unit, "Unit");
        assert!(unit_section.iter().any(|l| l.starts_with("StartLimitIntervalSec=")), "{unit}");
        assert!(unit_section.iter().any(|l| l.starts_with("StartLimitBurst=")), "{unit}");
        assert!(service.iter().any(|l| l.starts_with("RestartSec=")), "{unit}");
        assert_eq!(section(&unit, "Install"), ["WantedBy=multi-user.target"]);
        // Root on purpose (the supervisor drops privileges itself), explained in a comment.
        assert!(!service.iter().any(|l| l.starts_with("User=")), "{unit}");
        assert!(unit.contains("# No User=:"), "{unit}");
        assert!(!unit.contains("AF_NETLINK\n") && !service.iter().any(|l| l.contains("AF_NETLINK")));
        // Nothing systemd 252 lacks.
        assert!(!unit.contains("RestartSteps") && !unit.contains("notify-reload") && !unit.contains("RestartMaxDelaySec"));
    }

    #[test]
    fn memory_deny_write_execute_is_absent_and_the_comment_says_why() {
        let unit = render(&options("/srv/functions"));
        assert!(!unit.lines().any(|l| l.starts_with("MemoryDenyWriteExecute")), "{unit}");
        let comment = unit.lines().find(|l| l.starts_with('#') && l.contains("MemoryDenyWriteExecute")).expect("a comment");
        assert!(comment.contains("LuaJIT") && comment.contains("V8"), "{comment}");
    }

    #[test]
    fn stop_timeout_is_longer_than_the_drain_grace() {
        let default = options("/srv/functions");
        assert!(default.timeout_stop_s() * 1000 > DEFAULT_GRACE_MS + 1000);
        assert!(render(&default).contains(&format!("\nTimeoutStopSec={}s\n", default.timeout_stop_s())));
        let mut long = options("/srv/functions");
        long.env.push(("FN_SHUTDOWN_GRACE_MS".into(), "45500".into()));
        assert_eq!(long.grace_ms(), 45_500);
        assert!(long.timeout_stop_s() * 1000 > 45_500 + 1000, "{}", long.timeout_stop_s());
        assert!(render(&long).contains("\nTimeoutStopSec=66s\n"));
        assert!(render(&long).contains("\nEnvironment=FN_SHUTDOWN_GRACE_MS=45500\n"));
    }

    #[test]
    fn a_folder_under_home_keeps_home_readable_and_says_why() {
        for dir in ["/home/ana/functions", "/root/fns"] {
            let unit = render(&options(dir));
            assert!(unit.contains("\nProtectHome=read-only\n"), "{unit}");
            assert!(!unit.contains("\nProtectHome=yes\n"));
            let i = unit.find("\nProtectHome=read-only").expect("line");
            assert!(unit[..i].lines().last().is_some_and(|c| c.starts_with("# read-only") && c.contains("functions folder")), "{unit}");
        }
        // Only a path component counts: /homework is not /home.
        assert!(render(&options("/homework/fns")).contains("\nProtectHome=yes\n"));
        let mut in_home = options("/srv/functions");
        in_home.exe = PathBuf::from("/home/ana/.cargo/bin/fastfn");
        assert!(render(&in_home).contains("\nProtectHome=read-only\n"));
    }

    #[test]
    fn a_folder_under_tmp_turns_private_tmp_off_visibly() {
        let unit = render(&options("/tmp/fns"));
        assert!(unit.contains("\nPrivateTmp=no\n") && unit.contains("# no: the functions folder is under /tmp"), "{unit}");
    }

    #[test]
    fn low_ports_get_the_bind_capability_and_others_do_not() {
        let mut o = options("/srv/functions");
        assert!(!render(&o).contains("CAP_NET_BIND_SERVICE"));
        o.listen = "0.0.0.0:80".parse().expect("addr");
        let unit = render(&o);
        assert!(unit.contains("CAP_SETUID CAP_NET_BIND_SERVICE\n") && unit.contains("--listen 0.0.0.0:80 "), "{unit}");
    }

    #[test]
    fn arguments_are_escaped_for_systemd() {
        let mut o = options("/srv/my functions/100%");
        o.env.push(("GREETING".into(), "hello \"you\" 5%".into()));
        let unit = render(&o);
        assert!(unit.contains(" \"/srv/my functions/100%%\"\n"), "{unit}");
        assert!(unit.contains("\nEnvironment=\"GREETING=hello \\\"you\\\" 5%%\"\n"), "{unit}");
        assert_eq!(exec_arg("/a/$HOME"), "/a/$$HOME");
    }

    #[test]
    fn options_are_validated_from_the_command_line() {
        let o = UnitOptions::from_args(&args("/srv/functions", &["--name", "api.service", "--user", "fnuser", "--listen", "[::1]:9000", "--env", "FN_LOG=debug"]), PathBuf::from("/x/fastfn")).expect("valid");
        assert_eq!((o.name.as_str(), o.user.as_str(), o.listen.to_string()), ("api", "fnuser", "[::1]:9000".to_string()));
        assert_eq!(o.env, [("FN_LOG".to_string(), "debug".to_string())]);
        assert_eq!(o.run_base(), PathBuf::from("/run/api"));
        let rel = UnitOptions::from_args(&args("rel/fns", &[]), PathBuf::from("/x/fastfn")).expect("valid");
        assert!(rel.dir.is_absolute() && rel.dir.ends_with("rel/fns"), "{}", rel.dir.display());
        for (bad, what) in [
            (vec!["--name", "a/b"], "--name"),
            (vec!["--user", "root"], "--user root"),
            (vec!["--user", "Bad User"], "--user"),
            (vec!["--listen", "localhost"], "--listen"),
            (vec!["--env", "NOEQUALS"], "KEY=VALUE"),
            (vec!["--env", "FN_RUN_DIR=/x"], "RuntimeDirectory"),
            (vec!["--env", "FN_ADMIN_TOKEN=abc"], "FN_ADMIN_TOKEN_FILE"),
            (vec!["--env", "FN_SHUTDOWN_GRACE_MS=soon"], "milliseconds"),
            (vec!["--env", "X=a\nb"], "control character"),
        ] {
            let err = UnitOptions::from_args(&args("/srv/functions", &bad), PathBuf::from("/x/fastfn")).expect_err(what);
            assert!(err.contains(what), "{bad:?}: {err}");
        }
    }
}
