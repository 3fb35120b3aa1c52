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
    "name", "runtime", "entrypoint", "group", "version", "keep_warm", "schedule", "shared_deps", "edge",
    "strict_fs", "home", "assets", "zero_config", "zero_config_ignore_dirs", "response",
    "force-url", "force_url", "forceUrl", "sandbox", "description",
];
const INVOKE_NOT_APPLIED_YET: &[&str] =
    &["route", "routes", "adapter", "summary", "query", "body", "content_type", "default_method", "force-url", "force_url", "forceUrl"];

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
            "include_debug_headers" => match value.as_bool() {
                Some(b) => config.debug_headers = b,
                None => problems.push("include_debug_headers must be true or false".into()),
            },
            "worker_pool" => match value {
                Value::Object(pool) => read_worker_pool(pool, &mut config, &mut problems),
                _ => problems.push("worker_pool must be an object".into()),
            },
            "invoke" => match value {
                Value::Object(invoke) => read_invoke(invoke, &mut config, &mut problems),
                _ => problems.push("invoke must be an object".into()),
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
            // Warm pools come with supervision; these are accepted so upstream folders load.
            "enabled" | "min_warm" | "idle_ttl_seconds" | "queue_poll_ms" => config.ignored.push(format!("worker_pool.{key}")),
            other => problems.push(format!("`worker_pool.{other}` is not a known field")),
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
        let c = parse_text(r#"{"runtime": "python", "keep_warm": {"enabled": true}, "invoke": {"routes": ["/x"]}}"#).expect("loads");
        assert_eq!(c.ignored, vec!["invoke.routes".to_string(), "keep_warm".to_string(), "runtime".to_string()]);
    }
}
