//! `fn.config.json`: per-function settings, validated strictly — an invalid file names itself and the field, and
//! that folder's functions are not published (the others keep serving). This build applies `timeout_ms`,
//! `max_body_bytes`, `max_concurrency` and `worker_pool` (concurrency limit and queue), `include_debug_headers`,
//! `invoke.methods`, `invoke.allow_hosts` and `invoke.handler`; other
//! upstream fields are accepted and reported as not applied yet, so a folder written for upstream still loads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::types::Method;

pub const FILE_NAME: &str = "fn.config.json";
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Fields of upstream's fn.config.json that this build reads but does not apply yet.
const NOT_APPLIED_YET: &[&str] = &[
    "group", "version", "schedule", "shared_deps", "edge", "home", "assets", "response", "description", "discovery",
    "routing",
];
const INVOKE_NOT_APPLIED_YET: &[&str] = &["adapter", "summary", "query", "body", "content_type", "default_method"];
const FORCE_URL_KEYS: &[&str] = &["force-url", "force_url", "forceUrl"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FnConfig {
    pub timeout_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub max_concurrency: Option<u64>,
    pub methods: Option<BTreeSet<Method>>,
    pub allow_hosts: Vec<String>,
    pub handler: Option<String>,
    /// `worker_pool.max_workers`: the concurrency limit, over `max_concurrency` when both are set.
    pub max_workers: Option<u64>,
    /// `worker_pool.max_queue`: requests that may wait for a free slot.
    pub max_queue: Option<u64>,
    /// `worker_pool.queue_timeout_ms`: how long one may wait (default: the function's timeout).
    pub queue_timeout_ms: Option<u64>,
    /// `worker_pool.overflow_status`: 429 (default) or 503.
    pub overflow_status: Option<u16>,
    /// `include_debug_headers` (or `response.include_debug_headers`).
    pub debug_headers: bool,
    /// `worker_pool.min_warm > 0` or `keep_warm.enabled`: started with the stack, restarted when it exits, counted
    /// by readiness and health.
    pub warm: Option<bool>,
    /// Root only: `zero_config.ignore_dirs` / `zero_config_ignore_dirs`, more folder names discovery skips.
    pub ignore_dirs: Vec<String>,
    /// `"strict_fs": false` opts the function out of the protected-file rule (visible in status).
    pub strict_fs: Option<bool>,
    /// `"sandbox": {"exec": true}`: the handler may run other programs.
    pub allow_exec: bool,
    /// `worker_pool.idle_ttl_seconds` (or `keep_warm.idle_ttl_seconds`): a cold-started worker stops after this long
    /// without a request.
    pub idle_ttl_seconds: Option<u64>,
    /// Identity (an "explicit" function folder): `name` (a safe relative path), `runtime`, `entrypoint` (a safe
    /// relative file path inside the folder).
    pub name: Option<String>,
    pub runtime: Option<crate::types::Runtime>,
    pub entrypoint: Option<String>,
    /// `invoke.route` / `invoke.routes`, normalised; they replace the default `/<name>` and `/<name>/*`.
    pub routes: Vec<String>,
    /// `force-url` (top level or in `invoke`): this function's config routes win over file routes on the same path.
    pub force_url: bool,
    /// Fields present but not applied by this build (for a warning).
    pub ignored: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{} in {}: {}", FILE_NAME, dir.display(), problems.join("; "))]
pub struct ConfigError {
    pub dir: PathBuf,
    pub problems: Vec<String>,
}

/// Reads `dir/fn.config.json`; a missing file is the default config.
pub fn read(dir: &Path) -> Result<FnConfig, ConfigError> {
    match std::fs::read_to_string(dir.join(FILE_NAME)) {
        Ok(text) => parse(dir, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FnConfig::default()),
        Err(e) => Err(ConfigError { dir: dir.to_path_buf(), problems: vec![format!("cannot be read ({e})")] }),
    }
}

pub fn parse(dir: &Path, text: &str) -> Result<FnConfig, ConfigError> {
    let fail = |problems: Vec<String>| ConfigError { dir: dir.to_path_buf(), problems };
    let root: Value = serde_json::from_str(text).map_err(|e| fail(vec![format!("not valid JSON ({e})")]))?;
    let Value::Object(map) = root else { return Err(fail(vec!["the top level must be an object".into()])) };
    validate(&map).map_err(fail)
}

/// Checks every field and reports every problem, each naming its field.
pub fn validate(map: &Map<String, Value>) -> Result<FnConfig, Vec<String>> {
    let mut problems = Vec::new();
    let mut config = FnConfig::default();
    for (key, value) in map {
        match key.as_str() {
            "timeout_ms" => config.timeout_ms = positive(key, value, MAX_TIMEOUT_MS, &mut problems),
            "max_body_bytes" => config.max_body_bytes = positive(key, value, MAX_BODY_BYTES, &mut problems),
            "max_concurrency" => match value.as_u64() {
                Some(n) => config.max_concurrency = Some(n),
                None => problems.push("max_concurrency must be a whole number ≥ 0 (0 = unlimited)".into()),
            },
            "zero_config" => match value.get("ignore_dirs") {
                Some(list) => read_ignore_dirs("zero_config.ignore_dirs", list, &mut config, &mut problems),
                None => problems.push("zero_config must be an object like {\"ignore_dirs\": [\"build\"]}".into()),
            },
            "zero_config_ignore_dirs" => read_ignore_dirs(key, value, &mut config, &mut problems),
            "strict_fs" => match value.as_bool() {
                Some(b) => config.strict_fs = Some(b),
                None => problems.push("strict_fs must be true or false".into()),
            },
            "sandbox" => match value {
                Value::Object(sandbox) => {
                    for (key, value) in sandbox {
                        match (key.as_str(), value.as_bool()) {
                            ("exec", Some(b)) => config.allow_exec = b,
                            ("exec", None) => problems.push("sandbox.exec must be true or false".into()),
                            (other, _) => problems.push(format!("`sandbox.{other}` is not a known field")),
                        }
                    }
                }
                _ => problems.push("sandbox must be an object like {\"exec\": true}".into()),
            },
            "include_debug_headers" => match value.as_bool() {
                Some(b) => config.debug_headers = b,
                None => problems.push("include_debug_headers must be true or false".into()),
            },
            "keep_warm" => match value {
                Value::Object(keep) => read_keep_warm(keep, &mut config, &mut problems),
                Value::Bool(b) => config.warm = Some(*b),
                _ => problems.push("keep_warm must be an object like {\"enabled\": true}".into()),
            },
            "worker_pool" => match value {
                Value::Object(pool) => read_worker_pool(pool, &mut config, &mut problems),
                _ => problems.push("worker_pool must be an object".into()),
            },
            "invoke" => match value {
                Value::Object(invoke) => read_invoke(invoke, &mut config, &mut problems),
                _ => problems.push("invoke must be an object".into()),
            },
            "name" => match value.as_str().filter(|n| safe_relative(n)) {
                Some(n) => config.name = Some(n.trim_matches('/').to_string()),
                None => problems.push("name must be a relative path of letters, digits, `_`, `-` and `/` segments".into()),
            },
            "runtime" => match value.as_str().and_then(crate::types::Runtime::from_name) {
                Some(r) => config.runtime = Some(r),
                None => problems.push("runtime must be one of python, node, php, lua, go, rust".into()),
            },
            "entrypoint" => match value.as_str().filter(|p| safe_relative_file(p)) {
                Some(p) => config.entrypoint = Some(p.to_string()),
                None => problems.push("entrypoint must be a relative file path inside the folder (no `..`, no leading `/`)".into()),
            },
            other if FORCE_URL_KEYS.contains(&other) => match value.as_bool() {
                Some(b) => config.force_url = config.force_url || b,
                None => problems.push(format!("{other} must be true or false")),
            },
            other if NOT_APPLIED_YET.contains(&other) => config.ignored.push(other.to_string()),
            other => problems.push(format!("`{other}` is not a known field")),
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn read_worker_pool(pool: &Map<String, Value>, config: &mut FnConfig, problems: &mut Vec<String>) {
    for (key, value) in pool {
        match key.as_str() {
            "max_workers" => match value.as_u64() {
                Some(n) => config.max_workers = Some(n),
                None => problems.push("worker_pool.max_workers must be a whole number ≥ 0 (0 = unlimited)".into()),
            },
            "max_queue" => match value.as_u64() {
                Some(n) => config.max_queue = Some(n),
                None => problems.push("worker_pool.max_queue must be a whole number ≥ 0".into()),
            },
            "queue_timeout_ms" => config.queue_timeout_ms = positive("worker_pool.queue_timeout_ms", value, MAX_TIMEOUT_MS, problems),
            "overflow_status" => match value.as_u64() {
                Some(429) => config.overflow_status = Some(429),
                Some(503) => config.overflow_status = Some(503),
                _ => problems.push("worker_pool.overflow_status must be 429 or 503".into()),
            },
            "min_warm" => match value.as_u64() {
                Some(n) => config.warm = Some(config.warm.unwrap_or(false) || n > 0),
                None => problems.push("worker_pool.min_warm must be a whole number ≥ 0".into()),
            },
            "idle_ttl_seconds" => match value.as_u64() {
                Some(n) => config.idle_ttl_seconds = Some(n),
                None => problems.push("worker_pool.idle_ttl_seconds must be a whole number ≥ 0 (0 = never)".into()),
            },
            // One process per function today: a pool switch and its poll interval have nothing to change.
            "enabled" | "queue_poll_ms" => config.ignored.push(format!("worker_pool.{key}")),
            other => problems.push(format!("`worker_pool.{other}` is not a known field")),
        }
    }
}

impl FnConfig {
    /// Layers `child` (a deeper folder's policy) over `self`, key by key; `invoke.methods` and identity fields are
    /// not inherited, and allowed hosts come from the nearest folder that sets them.
    pub fn overlaid_by(&self, child: &FnConfig) -> FnConfig {
        FnConfig {
            timeout_ms: child.timeout_ms.or(self.timeout_ms),
            max_body_bytes: child.max_body_bytes.or(self.max_body_bytes),
            max_concurrency: child.max_concurrency.or(self.max_concurrency),
            methods: child.methods.clone(),
            allow_hosts: if child.allow_hosts.is_empty() { self.allow_hosts.clone() } else { child.allow_hosts.clone() },
            handler: child.handler.clone().or_else(|| self.handler.clone()),
            max_workers: child.max_workers.or(self.max_workers),
            max_queue: child.max_queue.or(self.max_queue),
            queue_timeout_ms: child.queue_timeout_ms.or(self.queue_timeout_ms),
            overflow_status: child.overflow_status.or(self.overflow_status),
            debug_headers: child.debug_headers || self.debug_headers,
            warm: child.warm.or(self.warm),
            strict_fs: child.strict_fs.or(self.strict_fs),
            allow_exec: child.allow_exec || self.allow_exec,
            idle_ttl_seconds: child.idle_ttl_seconds.or(self.idle_ttl_seconds),
            ignored: child.ignored.clone(),
            ..child.clone()
        }
    }

    /// A folder whose config names the function (`name`, `runtime`, `entrypoint` or `invoke.routes`) is one
    /// function, registered like a runtime-grouped one; otherwise the config is a policy for the files there.
    pub fn is_explicit(&self) -> bool {
        self.name.is_some() || self.runtime.is_some() || self.entrypoint.is_some() || !self.routes.is_empty()
    }
}

fn safe_relative(path: &str) -> bool {
    let trimmed = path.trim_matches('/');
    !trimmed.is_empty()
        && !path.starts_with('/')
        && trimmed.split('/').all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

fn safe_relative_file(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains("//")
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Normalises a configured route: leading `/`, no repeated or trailing `/`, no `..`, not reserved; `*` as a segment
/// becomes the `:wildcard*` catch-all and `:name` params are lower-cased, as discovery's own routes are.
pub fn normalize_route(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if !trimmed.starts_with('/') {
        return Err("must start with `/`".into());
    }
    let mut segments = Vec::new();
    for seg in trimmed.split('/').filter(|s| !s.is_empty()) {
        if seg == ".." || seg == "." {
            return Err("must not contain `.` or `..` segments".into());
        }
        let seg = if seg == "*" {
            ":wildcard*".to_string()
        } else if let Some(param) = seg.strip_prefix(':') {
            let (name, star) = param.strip_suffix('*').map_or((param, ""), |n| (n, "*"));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("has an invalid parameter `{seg}`"));
            }
            format!(":{}{star}", name.to_ascii_lowercase())
        } else if seg.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~@".contains(c)) {
            seg.to_string()
        } else {
            return Err(format!("has characters a route cannot use in `{seg}`"));
        };
        segments.push(seg);
    }
    if let Some(pos) = segments.iter().position(|s| s.ends_with('*')) {
        if pos + 1 != segments.len() {
            return Err("may have a catch-all only as its last segment".into());
        }
    }
    let route = format!("/{}", segments.join("/"));
    let first = segments.first().map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    if route == "/" || first == "_fn" || first == "console" {
        return Err("is reserved for fastfn".into());
    }
    Ok(route)
}

fn read_ignore_dirs(key: &str, value: &Value, config: &mut FnConfig, problems: &mut Vec<String>) {
    let items: Vec<&str> = match value {
        Value::String(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
        Value::Array(a) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
        _ => {
            problems.push(format!("{key} must be an array of folder names"));
            return;
        }
    };
    for item in items {
        if item.contains(['/', '\\']) || item.is_empty() {
            problems.push(format!("{key}: `{item}` must be a folder name, not a path"));
        } else {
            config.ignore_dirs.push(item.to_string());
        }
    }
}

fn read_keep_warm(keep: &Map<String, Value>, config: &mut FnConfig, problems: &mut Vec<String>) {
    for (key, value) in keep {
        match key.as_str() {
            "enabled" => match value.as_bool() {
                Some(b) => config.warm = Some(config.warm.unwrap_or(false) || b),
                None => problems.push("keep_warm.enabled must be true or false".into()),
            },
            "min_warm" => match value.as_u64() {
                Some(_) => {}
                None => problems.push("keep_warm.min_warm must be a whole number ≥ 0".into()),
            },
            "idle_ttl_seconds" => match value.as_u64() {
                Some(n) => config.idle_ttl_seconds = Some(n),
                None => problems.push("keep_warm.idle_ttl_seconds must be a whole number ≥ 0".into()),
            },
            // A warm worker is a running process; upstream's periodic ping has nothing to keep warm here.
            "ping_every_seconds" => config.ignored.push("keep_warm.ping_every_seconds".into()),
            other => problems.push(format!("`keep_warm.{other}` is not a known field")),
        }
    }
}

fn positive(key: &str, value: &Value, max: u64, problems: &mut Vec<String>) -> Option<u64> {
    match value.as_u64() {
        Some(n) if n > 0 && n <= max => Some(n),
        _ => {
            problems.push(format!("{key} must be a positive integer (at most {max})"));
            None
        }
    }
}

fn read_invoke(invoke: &Map<String, Value>, config: &mut FnConfig, problems: &mut Vec<String>) {
    for (key, value) in invoke {
        match key.as_str() {
            "methods" => {
                let items: Vec<&str> = match value {
                    Value::String(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
                    Value::Array(a) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
                    _ => {
                        problems.push("invoke.methods must be an array of method names".into());
                        continue;
                    }
                };
                let mut methods = BTreeSet::new();
                for item in items {
                    match Method::from_token(item) {
                        Some(m) => {
                            methods.insert(m);
                        }
                        None => problems.push(format!("invoke.methods: `{item}` is not one of GET, POST, PUT, PATCH, DELETE")),
                    }
                }
                if methods.is_empty() {
                    problems.push("invoke.methods must name at least one method".into());
                } else {
                    config.methods = Some(methods);
                }
            }
            "allow_hosts" => {
                let items: Vec<String> = match value {
                    Value::String(s) => s.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect(),
                    Value::Array(a) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).map(|h| h.trim().to_ascii_lowercase()).collect(),
                    _ => {
                        problems.push("invoke.allow_hosts must be an array of host names".into());
                        continue;
                    }
                };
                for host in &items {
                    let ok = host.len() <= 200 && !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "*-._:[]".contains(c));
                    if !ok {
                        problems.push(format!("invoke.allow_hosts: `{host}` is not a host name"));
                    }
                }
                config.allow_hosts = items;
            }
            "handler" => match value.as_str() {
                Some(h) if !h.is_empty() && !h.starts_with(|c: char| c.is_ascii_digit()) && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') => {
                    config.handler = Some(h.to_string());
                }
                _ => problems.push("invoke.handler must be an identifier like `handler` or `main`".into()),
            },
            "route" | "routes" => {
                let items: Vec<&str> = match value {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
                    _ => {
                        problems.push(format!("invoke.{key} must be a path or an array of paths"));
                        continue;
                    }
                };
                if items.len() > 32 {
                    problems.push(format!("invoke.{key} has {} routes; at most 32", items.len()));
                    continue;
                }
                for item in items {
                    match normalize_route(item) {
                        Ok(route) => {
                            if !config.routes.contains(&route) {
                                config.routes.push(route);
                            }
                        }
                        Err(why) => problems.push(format!("invoke.{key}: `{item}` {why}")),
                    }
                }
            }
            other if FORCE_URL_KEYS.contains(&other) => match value.as_bool() {
                Some(b) => config.force_url = config.force_url || b,
                None => problems.push(format!("invoke.{other} must be true or false")),
            },
            other if INVOKE_NOT_APPLIED_YET.contains(&other) => config.ignored.push(format!("invoke.{other}")),
            other => problems.push(format!("`invoke.{other}` is not a known field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<FnConfig, ConfigError> {
        parse(Path::new("/f/users"), text)
    }

    #[test]
    fn reads_the_applied_fields() {
        let c = parse_text(r#"{"timeout_ms": 500, "max_body_bytes": 10, "max_concurrency": 0, "invoke": {"methods": ["get", "POST"], "allow_hosts": "API.example.com, *.example.org", "handler": "main"}}"#).expect("valid");
        assert_eq!(c.timeout_ms, Some(500));
        assert_eq!(c.methods, Some([Method::Get, Method::Post].into_iter().collect()));
        assert_eq!(c.allow_hosts, vec!["api.example.com", "*.example.org"]);
        assert_eq!(c.handler.as_deref(), Some("main"));
    }

    #[test]
    fn every_problem_names_the_file_and_field() {
        let e = parse_text(r#"{"timeout_ms": -1, "max_body_bytes": "big", "invoke": {"methods": ["FETCH"], "handler": "1x"}, "colour": "red"}"#).expect_err("invalid");
        let msg = e.to_string();
        assert!(msg.starts_with("fn.config.json in /f/users: "), "{msg}");
        for needle in ["timeout_ms must be a positive integer", "max_body_bytes", "`FETCH`", "invoke.handler", "`colour` is not a known field"] {
            assert!(msg.contains(needle), "{needle} missing: {msg}");
        }
        assert!(parse_text("[]").is_err() && parse_text("{").is_err());
    }

    #[test]
    fn upstream_fields_load_and_are_reported() {
        let c = parse_text(r#"{"group": "x", "keep_warm": {"enabled": true, "ping_every_seconds": 45}, "invoke": {"adapter": "native"}}"#).expect("loads");
        assert_eq!(c.ignored, vec!["group".to_string(), "invoke.adapter".to_string(), "keep_warm.ping_every_seconds".to_string()]);
        assert_eq!(c.warm, Some(true));
    }

    #[test]
    fn identity_fields_and_routes() {
        let c = parse_text(r#"{"name": "api/users", "runtime": "python", "entrypoint": "src/api.py", "force_url": true, "invoke": {"routes": ["/v1/users", "/v1/users/:ID", "/v1/*"], "route": "/v1/users"}}"#).expect("valid");
        assert!(c.is_explicit() && c.force_url);
        assert_eq!(c.name.as_deref(), Some("api/users"));
        assert_eq!(c.routes, vec!["/v1/users", "/v1/users/:id", "/v1/:wildcard*"]);
        for (text, needle) in [
            (r#"{"name": "../x"}"#, "name must be"),
            (r#"{"runtime": "cobol"}"#, "runtime must be"),
            (r#"{"entrypoint": "../x.py"}"#, "entrypoint must be"),
            (r#"{"invoke": {"routes": ["/_fn/x"]}}"#, "reserved"),
            (r#"{"invoke": {"routes": ["nope"]}}"#, "must start with"),
            (r#"{"invoke": {"routes": ["/a/*/b"]}}"#, "catch-all"),
        ] {
            let msg = parse_text(text).expect_err(text).to_string();
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }
}
