//! Settings: the command line and the environment, validated and resolved (paths absolute, binaries found, users
//! looked up) before anything starts. Every problem is reported at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::binaries::{self, Nginx};
use crate::catalog::Defaults;
use crate::cli::StackArgs;
use crate::config_file::{self, Sources};
use crate::guard::{self, GuardSettings};
use crate::types::Mode;

pub const DEFAULT_PORT: u16 = 8080;
/// How long a cold start (spawn + load + ping) may take before the gateway gives up with 503.
pub const DEFAULT_COLD_START_TIMEOUT_MS: u64 = 10_000;
/// How long in-flight requests get at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

/// The environment variables fastfn reads, so tests and docs can list them.
pub mod env {
    pub const HOST_BIND: &str = "FN_HOST_BIND";
    pub const HOST_PORT: &str = "FN_HOST_PORT";
    pub const OPENRESTY_BIN: &str = "FN_OPENRESTY_BIN";
    pub const PYTHON_BIN: &str = "FN_PYTHON_BIN";
    pub const NODE_BIN: &str = "FN_NODE_BIN";
    pub const PHP_BIN: &str = "FN_PHP_BIN";
    pub const GO_BIN: &str = "FN_GO_BIN";
    pub const RUN_DIR: &str = "FN_RUN_DIR";
    pub const GATEWAY_USER: &str = "FN_GATEWAY_USER";
    pub const NGINX_WORKERS: &str = "FN_NGINX_WORKERS";
    pub const COLD_START_TIMEOUT_MS: &str = "FN_COLD_START_TIMEOUT_MS";
    pub const OPENAPI_INCLUDE_INTERNAL: &str = "FN_OPENAPI_INCLUDE_INTERNAL";
    pub const FORCE_URL: &str = "FN_FORCE_URL";
    pub const USER: &str = "FN_USER";
    pub const STRICT_FS: &str = "FN_STRICT_FS";
    pub const HOT_RELOAD: &str = "FN_HOT_RELOAD";
    pub const SHUTDOWN_GRACE_MS: &str = "FN_SHUTDOWN_GRACE_MS";
    pub const LOG_MAX_BYTES: &str = "FN_LOG_MAX_BYTES";
    pub const ZERO_CONFIG_IGNORE_DIRS: &str = "FN_ZERO_CONFIG_IGNORE_DIRS";
    pub const RUNTIMES: &str = "FN_RUNTIMES";
    pub const WORKER_MAX_DATA_MB: &str = "FN_WORKER_MAX_DATA_MB";
    pub const WORKER_MAX_OPEN_FILES: &str = "FN_WORKER_MAX_OPEN_FILES";
    pub const WORKER_MAX_PROCESSES: &str = "FN_WORKER_MAX_PROCESSES";
    pub const WORKER_MAX_FILE_SIZE_MB: &str = "FN_WORKER_MAX_FILE_SIZE_MB";
    pub const DEFAULT_TIMEOUT_MS: &str = "FN_DEFAULT_TIMEOUT_MS";
    pub const DEFAULT_MAX_BODY_BYTES: &str = "FN_DEFAULT_MAX_BODY_BYTES";
    pub const DEFAULT_MAX_CONCURRENCY: &str = "FN_DEFAULT_MAX_CONCURRENCY";
    pub const DEFAULT_MAX_QUEUE: &str = "FN_DEFAULT_MAX_QUEUE";
    pub const PUBLIC_BASE_URL: &str = "FN_PUBLIC_BASE_URL";
    pub const BENCH_CEILING: &str = "FN_BENCH_CEILING";
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// An unprivileged user fastfn switches to when it starts as root: the gateway's (nginx workers) or FN_USER (function
/// workers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    pub name: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub functions_root: PathBuf,
    pub listen: SocketAddr,
    pub ready_file: Option<PathBuf>,
    pub run_base: PathBuf,
    pub nginx: Nginx,
    pub python_bin: Option<String>,
    pub node_bin: Option<String>,
    pub php_bin: Option<String>,
    pub go_bin: Option<String>,
    /// Set when running as root: nginx workers drop to this user, and sockets are made for it.
    pub gateway_user: Option<ServiceUser>,
    pub nginx_workers: String,
    pub cold_start_timeout_ms: u64,
    /// Limits for functions without their own (`FN_DEFAULT_*`).
    pub defaults: Defaults,
    pub guard: GuardSettings,
    /// `FN_OPENAPI_INCLUDE_INTERNAL`: the OpenAPI document also describes `/_fn/*`.
    pub openapi_include_internal: bool,
    /// `FN_PUBLIC_BASE_URL`: the OpenAPI server URL (else the request's Host).
    pub public_base_url: Option<String>,
    /// `FN_FORCE_URL`: every function's config routes win over file routes on the same path.
    pub force_url: bool,
    /// Set when running as root: function workers drop to this user (`FN_USER`, default `fastfn`).
    pub worker_user: Option<ServiceUser>,
    /// Resource limits of every function worker (`FN_WORKER_MAX_*`).
    pub worker_limits: crate::sandbox::Limits,
    /// `FN_STRICT_FS` (default on): workers cannot read their own fn.env.json / fn.config.json.
    pub strict_fs: bool,
    /// `FN_ZERO_CONFIG_IGNORE_DIRS`: folder names discovery skips.
    pub extra_ignore_dirs: Vec<String>,
    /// `FN_RUNTIMES`: the runtimes whose functions are published (`None` = all this build runs).
    pub runtimes: Option<Vec<crate::types::Runtime>>,
    /// Watch the functions folder: `dev` unless FN_HOT_RELOAD=0; `run` with --hot-reload or FN_HOT_RELOAD=1.
    pub hot_reload: bool,
    /// `FN_SHUTDOWN_GRACE_MS` (default 10 s): how long in-flight requests get at shutdown.
    pub shutdown_grace: std::time::Duration,
    /// `FN_LOG_MAX_BYTES` (default 16 MiB): size at which each log file the supervisor writes rotates.
    pub log_max_bytes: u64,
    /// `FN_BENCH_CEILING` (benchmarks only): nginx also answers `/_fastfn_bench_ceiling` from inline Lua.
    pub bench_ceiling: bool,
}

/// Reads an environment variable, treating empty as unset.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Flags, then the environment, then `fastfn.toml` (`--config`, or the one in the functions folder).
    pub fn resolve(mode: Mode, args: &StackArgs) -> Result<Settings, anyhow::Error> {
        let sources = load_sources(args).map_err(ConfigError::Invalid)?;
        Settings::resolve_with(mode, args, &sources)
    }

    pub fn resolve_with(mode: Mode, args: &StackArgs, sources: &Sources) -> Result<Settings, anyhow::Error> {
        let mut problems = Vec::new();
        let env_var = |name: &str| sources.get(name);

        let listen = match listen_from(args.listen.as_deref(), sources) {
            Ok(addr) => Some(addr),
            Err(e) => {
                problems.push(e);
                None
            }
        };

        let functions_root = match std::fs::canonicalize(&args.dir) {
            Ok(p) if p.is_dir() => Some(p),
            Ok(p) => {
                problems.push(format!("functions folder `{}` is not a folder", p.display()));
                None
            }
            Err(e) => {
                problems.push(format!("functions folder `{}`: {e}", args.dir.display()));
                None
            }
        };

        let number = |name: &str, min: u64, default: u64, problems: &mut Vec<String>| number(sources, name, min, default, problems);
        let flag = |name: &str, problems: &mut Vec<String>| flag(sources, name, problems);
        let cold_start_timeout_ms = number(env::COLD_START_TIMEOUT_MS, 1, DEFAULT_COLD_START_TIMEOUT_MS, &mut problems);
        let builtin = Defaults::default();
        let defaults = Defaults {
            timeout_ms: number(env::DEFAULT_TIMEOUT_MS, 1, builtin.timeout_ms, &mut problems),
            max_body_bytes: number(env::DEFAULT_MAX_BODY_BYTES, 1, builtin.max_body_bytes, &mut problems),
            max_concurrency: number(env::DEFAULT_MAX_CONCURRENCY, 0, builtin.max_concurrency, &mut problems),
            max_queue: number(env::DEFAULT_MAX_QUEUE, 0, builtin.max_queue, &mut problems),
        };

        let nginx_workers = match env_var(env::NGINX_WORKERS) {
            None => "auto".to_string(),
            Some(v) if v == "auto" || v.parse::<u16>().is_ok_and(|n| n > 0) => v,
            Some(v) => {
                problems.push(format!("{} must be `auto` or a positive integer, got `{v}`", env::NGINX_WORKERS));
                "auto".to_string()
            }
        };

        let as_root = nix::unistd::Uid::effective().is_root();
        // Only root switches users: nginx workers to the gateway's, function workers to FN_USER.
        let gateway_user = if as_root { noted(find_gateway_user(env_var(env::GATEWAY_USER).as_deref()), &mut problems) } else { None };
        let worker_user = if as_root { noted(find_worker_user(env_var(env::USER).as_deref()), &mut problems) } else { None };

        let guard = guard::from_env(&env_var, &mut problems);
        let openapi_include_internal = flag(env::OPENAPI_INCLUDE_INTERNAL, &mut problems);
        let force_url = flag(env::FORCE_URL, &mut problems);
        let strict_fs = env_var(env::STRICT_FS).is_none() || flag(env::STRICT_FS, &mut problems);
        let shutdown_grace = std::time::Duration::from_millis(number(env::SHUTDOWN_GRACE_MS, 0, DEFAULT_SHUTDOWN_GRACE_MS, &mut problems));
        let bench_ceiling = flag(env::BENCH_CEILING, &mut problems);
        let log_max_bytes = number(env::LOG_MAX_BYTES, 4096, crate::supervise::logfile::DEFAULT_MAX_BYTES, &mut problems);
        let hot_reload = args.hot_reload
            || match env_var(env::HOT_RELOAD) {
                Some(_) => flag(env::HOT_RELOAD, &mut problems),
                None => mode == Mode::Dev,
            };
        let extra_ignore_dirs: Vec<String> =
            env_var(env::ZERO_CONFIG_IGNORE_DIRS).map(|v| v.split(',').map(str::trim).filter(|d| !d.is_empty() && !d.contains(['/', '\\'])).map(String::from).collect()).unwrap_or_default();
        let runtimes = env_var(env::RUNTIMES).map(|list| {
            let mut runtimes = Vec::new();
            for name in list.split(',').map(|r| r.trim().to_ascii_lowercase()).filter(|r| !r.is_empty()) {
                match crate::types::Runtime::from_name(&name) {
                    Some(r) if r.is_supported() => runtimes.push(r),
                    Some(r) => problems.push(format!("{}: this build cannot run `{r}` functions yet", env::RUNTIMES)),
                    None => problems.push(format!("{}: `{name}` is not a runtime (python, node, php, lua, go, rust)", env::RUNTIMES)),
                }
            }
            runtimes
        });
        let builtin_limits = crate::sandbox::Limits::default();
        let worker_limits = crate::sandbox::Limits {
            data_bytes: number(env::WORKER_MAX_DATA_MB, 16, builtin_limits.data_bytes >> 20, &mut problems) << 20,
            open_files: number(env::WORKER_MAX_OPEN_FILES, 64, builtin_limits.open_files, &mut problems),
            processes: Some(number(env::WORKER_MAX_PROCESSES, 16, builtin_limits.processes.unwrap_or(1024), &mut problems)),
            file_size_bytes: number(env::WORKER_MAX_FILE_SIZE_MB, 1, builtin_limits.file_size_bytes >> 20, &mut problems) << 20,
        };
        let public_base_url = env_var(env::PUBLIC_BASE_URL).map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!("{} must start with http:// or https://, got `{url}`", env::PUBLIC_BASE_URL));
            }
        }

        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems.into_iter().map(|p| sources.explain(p)).collect()).into());
        }

        // Missing binaries are a different kind of error (with an install hint), reported after config problems.
        let nginx = binaries::find_nginx(env_var(env::OPENRESTY_BIN).as_deref())?;

        let run_base = args
            .run_dir
            .clone()
            .or_else(|| env_var(env::RUN_DIR).map(PathBuf::from))
            .unwrap_or_else(default_run_base);

        Ok(Settings {
            mode,
            functions_root: functions_root.unwrap_or_default(),
            listen: listen.unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT)),
            ready_file: args.ready_file.clone(),
            run_base,
            nginx,
            python_bin: env_var(env::PYTHON_BIN),
            node_bin: env_var(env::NODE_BIN),
            php_bin: env_var(env::PHP_BIN),
            go_bin: env_var(env::GO_BIN),
            gateway_user,
            nginx_workers,
            cold_start_timeout_ms,
            defaults,
            guard,
            openapi_include_internal,
            public_base_url,
            force_url,
            worker_user,
            worker_limits,
            strict_fs,
            extra_ignore_dirs,
            runtimes,
            hot_reload,
            shutdown_grace,
            log_max_bytes,
            bench_ceiling,
        })
    }
}

/// The settings file the flags and the functions folder name, parsed; every problem names the file and the key.
pub fn load_sources(args: &StackArgs) -> Result<Sources, Vec<String>> {
    let root = std::fs::canonicalize(&args.dir).ok();
    let path = config_file::locate(args.config.as_deref(), root.as_deref()).map_err(|e| vec![e])?;
    let file = path.map(|p| config_file::load(&p)).transpose()?;
    Ok(Sources::new(file))
}

/// `--listen`, else FN_HOST_BIND/FN_HOST_PORT, else the file's `listen`, else 127.0.0.1:8080.
pub fn listen_from(flag: Option<&str>, sources: &Sources) -> Result<SocketAddr, String> {
    let (bind, port) = (env_var(env::HOST_BIND), env_var(env::HOST_PORT));
    match (flag, sources.file_listen()) {
        (None, Some(from_file)) if bind.is_none() && port.is_none() => from_file.parse::<SocketAddr>().map_err(|_| {
            let file = sources.file.as_ref().map(|f| f.path.display().to_string()).unwrap_or_default();
            format!("{file}: `listen` = \"{from_file}\" is not ADDR:PORT (for example 127.0.0.1:8080 or [::1]:8080)")
        }),
        _ => parse_listen(flag, bind.as_deref(), port.as_deref()),
    }
}

/// A switch (off when unset); a bad value is reported.
fn flag(sources: &Sources, name: &str, problems: &mut Vec<String>) -> bool {
    match sources.get(name) {
        None => false,
        Some(v) => guard::parse_flag(&v).unwrap_or_else(|| {
            problems.push(format!("{name} must be one of 1/true/yes/on or 0/false/no/off, got `{v}`"));
            false
        }),
    }
}

/// A whole number, at least `min`; a bad value is reported and the default used.
fn number(sources: &Sources, name: &str, min: u64, default: u64, problems: &mut Vec<String>) -> u64 {
    match sources.get(name) {
        None => default,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= min => n,
            _ => {
                problems.push(format!("{name} must be a whole number ≥ {min}, got `{v}`"));
                default
            }
        },
    }
}

/// `--listen` wins; otherwise `FN_HOST_BIND` (default 127.0.0.1) and `FN_HOST_PORT` (default 8080).
pub fn parse_listen(flag: Option<&str>, bind: Option<&str>, port: Option<&str>) -> Result<SocketAddr, String> {
    if let Some(flag) = flag {
        return flag.parse::<SocketAddr>().map_err(|_| format!("--listen `{flag}` is not ADDR:PORT (for example 127.0.0.1:8080 or [::1]:8080)"));
    }
    let ip = match bind {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(b) => b.parse::<IpAddr>().map_err(|_| format!("{} `{b}` is not an IP address", env::HOST_BIND))?,
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("{} `{p}` is not a port number (1-65535)", env::HOST_PORT)),
        },
    };
    Ok(SocketAddr::new(ip, port))
}

/// Where run dirs go when neither `--run-dir` nor `FN_RUN_DIR` says.
pub fn default_run_base() -> PathBuf {
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        return PathBuf::from("/run/fastfn");
    }
    if let Some(xdg) = env_var("XDG_RUNTIME_DIR") {
        return PathBuf::from(xdg).join("fastfn");
    }
    std::env::temp_dir().join(format!("fastfn-{uid}"))
}

/// Keeps a value, or records why there is none.
fn noted<T>(result: Result<T, String>, problems: &mut Vec<String>) -> Option<T> {
    result.map_err(|e| problems.push(e)).ok()
}

/// A user and its primary group, by name.
pub fn lookup_user(name: &str) -> Option<ServiceUser> {
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    let group = nix::unistd::Group::from_gid(user.gid).ok().flatten().map(|g| g.name).unwrap_or_else(|| user.gid.to_string());
    Some(ServiceUser { name: user.name, group, uid: user.uid.as_raw(), gid: user.gid.as_raw() })
}

/// The user function workers run as when fastfn starts as root: `FN_USER`, else `fastfn`, else `nobody` (warned).
fn find_worker_user(wanted: Option<&str>) -> Result<ServiceUser, String> {
    let lookup = lookup_user;
    match wanted {
        Some(name) => {
            let user = lookup(name).ok_or_else(|| format!("{} `{name}` is not a user on this system", env::USER))?;
            if user.uid == 0 {
                return Err(format!("{} `{name}` is root: function workers must run as an unprivileged user", env::USER));
            }
            Ok(user)
        }
        None => match lookup("fastfn") {
            Some(user) => Ok(user),
            None => {
                tracing::warn!(
                    "no `fastfn` user: function workers run as `nobody`, which other services share (hint: useradd --system --no-create-home --shell /usr/sbin/nologin fastfn)"
                );
                lookup("nobody").ok_or_else(|| "running as root, but neither `fastfn` nor `nobody` exists for function workers: set FN_USER".to_string())
            }
        },
    }
}

fn find_gateway_user(wanted: Option<&str>) -> Result<ServiceUser, String> {
    let candidates: Vec<&str> = match wanted {
        Some(name) => vec![name],
        None => vec!["www-data", "nobody"],
    };
    if let Some(user) = candidates.iter().find_map(|name| lookup_user(name)) {
        return Ok(user);
    }
    Err(match wanted {
        Some(name) => format!("{} `{name}` is not a user on this system", env::GATEWAY_USER),
        None => "running as root, but neither `www-data` nor `nobody` exists for the gateway: set FN_GATEWAY_USER".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_defaults_and_overrides() {
        assert_eq!(parse_listen(None, None, None).expect("default"), "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(parse_listen(None, Some("0.0.0.0"), Some("9000")).expect("env"), "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(parse_listen(Some("[::1]:7000"), Some("0.0.0.0"), Some("9000")).expect("flag wins"), "[::1]:7000".parse().expect("addr"));
    }

    #[test]
    fn bad_listen_values_name_the_setting() {
        assert!(parse_listen(Some("localhost"), None, None).expect_err("no port").contains("--listen"));
        assert!(parse_listen(None, Some("example.com"), None).expect_err("not ip").contains("FN_HOST_BIND"));
        assert!(parse_listen(None, None, Some("0")).expect_err("port 0").contains("FN_HOST_PORT"));
        assert!(parse_listen(None, None, Some("70000")).expect_err("too big").contains("FN_HOST_PORT"));
    }
}
