//! `fastfn.toml`: every setting of the `FN_*` environment variables, as a file (in the functions folder, or
//! `--config`). Each key maps to one variable and is parsed strictly: an unknown key or a value of the wrong type is
//! an error naming the file and the key. Precedence: flags, then the environment, then the file, then the default —
//! `Sources` answers "what is the value of FN_X, and where did it come from".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::env;
use crate::guard::env as guard_env;

/// The file's name in the functions folder.
pub const FILE_NAME: &str = "fastfn.toml";

/// What a key holds in TOML; every value becomes the text its environment variable would hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A string or a whole number (`nginx_workers = "auto"` or `4`).
    TextOrInteger,
    Integer,
    Bool,
    /// An array of strings, joined with commas.
    List,
}

/// One setting: its key in the file, the environment variable it stands for, and its default as shown to users.
pub struct Key {
    pub path: &'static str,
    pub env: &'static str,
    pub kind: Kind,
    /// Shown as `<hidden>` by `fastfn config show`.
    pub secret: bool,
    pub default: fn() -> String,
}

const fn key(path: &'static str, env: &'static str, kind: Kind, default: fn() -> String) -> Key {
    Key { path, env, kind, secret: false, default }
}

fn none() -> String {
    "(none)".to_string()
}
fn on() -> String {
    "on".to_string()
}
fn off() -> String {
    "off".to_string()
}

/// `listen` is a file key without a single variable of its own (FN_HOST_BIND + FN_HOST_PORT in the environment).
pub const LISTEN_KEY: &str = "listen";

/// Every key the file accepts, in the order `config show` prints them.
pub static KEYS: &[Key] = &[
    key(LISTEN_KEY, "FN_HOST_BIND/FN_HOST_PORT", Kind::Text, || format!("127.0.0.1:{}", crate::config::DEFAULT_PORT)),
    key("run_dir", env::RUN_DIR, Kind::Text, || crate::config::default_run_base().display().to_string()),
    key("hot_reload", env::HOT_RELOAD, Kind::Bool, || "on in dev, off in run".to_string()),
    key("user", env::USER, Kind::Text, || "fastfn (else nobody), as root".to_string()),
    key("gateway_user", env::GATEWAY_USER, Kind::Text, || "www-data (else nobody), as root".to_string()),
    key("nginx_workers", env::NGINX_WORKERS, Kind::TextOrInteger, || "auto".to_string()),
    key("cold_start_timeout_ms", env::COLD_START_TIMEOUT_MS, Kind::Integer, || crate::config::DEFAULT_COLD_START_TIMEOUT_MS.to_string()),
    key("shutdown_grace_ms", env::SHUTDOWN_GRACE_MS, Kind::Integer, || crate::config::DEFAULT_SHUTDOWN_GRACE_MS.to_string()),
    key("log_max_bytes", env::LOG_MAX_BYTES, Kind::Integer, || crate::supervise::logfile::DEFAULT_MAX_BYTES.to_string()),
    key("strict_fs", env::STRICT_FS, Kind::Bool, on),
    key("force_url", env::FORCE_URL, Kind::Bool, off),
    key("runtimes", env::RUNTIMES, Kind::List, || "all".to_string()),
    key("ignore_dirs", env::ZERO_CONFIG_IGNORE_DIRS, Kind::List, none),
    key("public_base_url", env::PUBLIC_BASE_URL, Kind::Text, none),
    key("openapi_include_internal", env::OPENAPI_INCLUDE_INTERNAL, Kind::Bool, off),
    key("binaries.openresty", env::OPENRESTY_BIN, Kind::Text, || "openresty, else nginx on PATH".to_string()),
    key("binaries.python", env::PYTHON_BIN, Kind::Text, || "python3 on PATH".to_string()),
    key("binaries.node", env::NODE_BIN, Kind::Text, || "node on PATH".to_string()),
    key("binaries.php", env::PHP_BIN, Kind::Text, || "php on PATH".to_string()),
    key("binaries.go", env::GO_BIN, Kind::Text, || "go on PATH".to_string()),
    key("defaults.timeout_ms", env::DEFAULT_TIMEOUT_MS, Kind::Integer, || crate::catalog::Defaults::default().timeout_ms.to_string()),
    key("defaults.max_body_bytes", env::DEFAULT_MAX_BODY_BYTES, Kind::Integer, || crate::catalog::Defaults::default().max_body_bytes.to_string()),
    key("defaults.max_concurrency", env::DEFAULT_MAX_CONCURRENCY, Kind::Integer, || crate::catalog::Defaults::default().max_concurrency.to_string()),
    key("defaults.max_queue", env::DEFAULT_MAX_QUEUE, Kind::Integer, || crate::catalog::Defaults::default().max_queue.to_string()),
    key("worker_limits.max_data_mb", env::WORKER_MAX_DATA_MB, Kind::Integer, || (crate::sandbox::Limits::default().data_bytes >> 20).to_string()),
    key("worker_limits.max_open_files", env::WORKER_MAX_OPEN_FILES, Kind::Integer, || crate::sandbox::Limits::default().open_files.to_string()),
    key("worker_limits.max_processes", env::WORKER_MAX_PROCESSES, Kind::Integer, || crate::sandbox::Limits::default().processes.unwrap_or(0).to_string()),
    key("worker_limits.max_file_size_mb", env::WORKER_MAX_FILE_SIZE_MB, Kind::Integer, || (crate::sandbox::Limits::default().file_size_bytes >> 20).to_string()),
    key("console.api_enabled", guard_env::CONSOLE_API_ENABLED, Kind::Bool, on),
    key("console.admin_api_enabled", guard_env::ADMIN_API_ENABLED, Kind::Bool, on),
    key("console.ui_enabled", guard_env::UI_ENABLED, Kind::Bool, off),
    key("console.write_enabled", guard_env::WRITE_ENABLED, Kind::Bool, off),
    key("console.local_only", guard_env::LOCAL_ONLY, Kind::Bool, on),
    // The token itself is environment-only: in fastfn.toml it would sit in the functions folder.
    Key { path: "console.admin_token", env: guard_env::ADMIN_TOKEN, kind: Kind::Text, secret: true, default: none },
    key("console.admin_token_file", guard_env::ADMIN_TOKEN_FILE, Kind::Text, none),
    key("console.trusted_cidrs", guard_env::TRUSTED_CIDRS, Kind::List, none),
    key("console.trusted_proxy_cidrs", guard_env::TRUSTED_PROXY_CIDRS, Kind::List, none),
    key("console.allowed_hosts", guard_env::ALLOWED_HOSTS, Kind::List, none),
    key("console.rate_limit_max", guard_env::RATE_LIMIT_MAX, Kind::Integer, || "120".to_string()),
    key("console.write_rate_limit_max", guard_env::WRITE_RATE_LIMIT_MAX, Kind::Integer, || "30".to_string()),
    key("console.rate_limit_window_s", guard_env::RATE_LIMIT_WINDOW_S, Kind::Integer, || "60".to_string()),
    key("console.login_rate_limit_max", guard_env::LOGIN_RATE_LIMIT_MAX, Kind::Integer, || "5".to_string()),
    key("console.login_rate_limit_window_s", guard_env::LOGIN_RATE_LIMIT_WINDOW_S, Kind::Integer, || "300".to_string()),
];

/// Keys the file may not hold, with why.
const ENV_ONLY: &[(&str, &str)] = &[("console.admin_token", "put the token in a file readable only by fastfn's user and set `console.admin_token_file` (a token in fastfn.toml would sit in the functions folder)")];

/// A parsed `fastfn.toml`: each present key's value, as its environment variable's text.
#[derive(Debug, Clone, Default)]
pub struct FileValues {
    pub path: PathBuf,
    /// By file key.
    values: BTreeMap<&'static str, String>,
}

impl FileValues {
    pub fn get(&self, path: &str) -> Option<&str> {
        self.values.get(path).map(String::as_str)
    }
}

/// Reads and checks a file; every problem names the file and the key.
pub fn load(path: &Path) -> Result<FileValues, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: cannot be read: {e}", path.display())])?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<FileValues, Vec<String>> {
    let shown = path.display();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| vec![format!("{shown}: not valid TOML: {}", e.to_string().trim_end())])?;
    let mut problems = Vec::new();
    let mut values = BTreeMap::new();
    let mut flat = Vec::new();
    flatten("", &table, &mut flat);
    for (name, value) in flat {
        if let Some((_, why)) = ENV_ONLY.iter().find(|(k, _)| *k == name) {
            problems.push(format!("{shown}: `{name}` is not allowed here: {why}"));
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| k.path == name) else {
            problems.push(format!("{shown}: unknown key `{name}`{}", suggestion(&name)));
            continue;
        };
        match to_text(key.kind, value) {
            Ok(text) => {
                values.insert(key.path, text);
            }
            Err(expected) => problems.push(format!("{shown}: `{name}` must be {expected}, got {}", describe(value))),
        }
    }
    if problems.is_empty() {
        Ok(FileValues { path: path.to_path_buf(), values })
    } else {
        Err(problems)
    }
}

/// Tables become dotted names; a table where a value belongs (or the reverse) is caught as an unknown key or a type.
fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (k, v) in table {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(inner) if !KEYS.iter().any(|key| key.path == name) => flatten(&name, inner, out),
            _ => out.push((name, v)),
        }
    }
}

fn to_text(kind: Kind, value: &toml::Value) -> Result<String, &'static str> {
    use toml::Value as V;
    match (kind, value) {
        (Kind::Text | Kind::TextOrInteger, V::String(s)) => Ok(s.clone()),
        (Kind::Integer | Kind::TextOrInteger, V::Integer(n)) => Ok(n.to_string()),
        (Kind::Bool, V::Boolean(b)) => Ok(if *b { "1" } else { "0" }.to_string()),
        (Kind::List, V::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    V::String(s) if !s.contains(',') => parts.push(s.clone()),
                    _ => return Err("an array of strings (without commas)"),
                }
            }
            Ok(parts.join(","))
        }
        (Kind::Text, _) => Err("a string"),
        (Kind::TextOrInteger, _) => Err("a string or a whole number"),
        (Kind::Integer, _) => Err("a whole number"),
        (Kind::Bool, _) => Err("true or false"),
        (Kind::List, _) => Err("an array of strings"),
    }
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the string \"{s}\""),
        toml::Value::Table(_) => "a table".to_string(),
        toml::Value::Array(_) => "an array".to_string(),
        toml::Value::Integer(n) => format!("integer `{n}`"),
        toml::Value::Float(x) => format!("float `{x}`"),
        toml::Value::Boolean(b) => format!("boolean `{b}`"),
        toml::Value::Datetime(d) => format!("datetime `{d}`"),
    }
}

/// " (did you mean `x`?)" for a key one or two edits from a known one, else the keys of its section.
fn suggestion(name: &str) -> String {
    if let Some(close) = KEYS.iter().map(|k| k.path).find(|k| edit_distance(k, name) <= 2) {
        return format!(" (did you mean `{close}`?)");
    }
    let section = name.rsplit_once('.').map(|(s, _)| format!("{s}."));
    let known: Vec<&str> = KEYS.iter().map(|k| k.path).filter(|k| match &section {
        Some(s) => k.starts_with(s.as_str()),
        None => !k.contains('.'),
    }).collect();
    if known.is_empty() {
        let sections: std::collections::BTreeSet<&str> = KEYS.iter().filter_map(|k| k.path.split_once('.').map(|(s, _)| s)).collect();
        format!(" (sections: {})", sections.into_iter().collect::<Vec<_>>().join(", "))
    } else {
        format!(" (known here: {})", known.join(", "))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb { previous } else { 1 + previous.min(row[j]).min(current) };
            previous = current;
        }
    }
    row[b.len()]
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// The environment over the file: what every `FN_*` lookup in `config` goes through.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<FileValues>,
    /// The environment (a map in tests).
    env: Option<BTreeMap<String, String>>,
}

impl Sources {
    pub fn new(file: Option<FileValues>) -> Sources {
        Sources { file, env: None }
    }

    #[cfg(test)]
    pub fn with_env(file: Option<FileValues>, env: &[(&str, &str)]) -> Sources {
        Sources { file, env: Some(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()) }
    }

    fn env_value(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(map) => map.get(name).filter(|v| !v.trim().is_empty()).cloned(),
            None => crate::config::env_var(name),
        }
    }

    /// The value of an `FN_*` setting: the environment's, else the file's.
    pub fn get(&self, env_name: &str) -> Option<String> {
        self.env_value(env_name).or_else(|| self.file_value(env_name).map(str::to_string))
    }

    fn file_value(&self, env_name: &str) -> Option<&str> {
        let key = KEYS.iter().find(|k| k.env == env_name)?;
        self.file.as_ref()?.get(key.path)
    }

    /// Where `get(env_name)` found its value.
    pub fn origin(&self, env_name: &'static str) -> Origin {
        if self.env_value(env_name).is_some() {
            Origin::Env(env_name)
        } else if let (Some(file), Some(_)) = (&self.file, self.file_value(env_name)) {
            Origin::File(file.path.clone())
        } else {
            Origin::Default
        }
    }

    /// The file's `listen`, used when neither `--listen` nor FN_HOST_BIND/FN_HOST_PORT is set.
    pub fn file_listen(&self) -> Option<&str> {
        self.file.as_ref()?.get(LISTEN_KEY)
    }

    /// A problem about a variable whose value came from the file names the file and the key instead.
    pub fn explain(&self, problem: String) -> String {
        let Some(file) = &self.file else { return problem };
        for key in KEYS {
            if let Some(rest) = problem.strip_prefix(key.env).filter(|rest| rest.starts_with([' ', ':'])) {
                if self.env_value(key.env).is_none() && file.get(key.path).is_some() {
                    return format!("{}: `{}`{rest}", file.path.display(), key.path);
                }
            }
        }
        problem
    }
}

/// The file to read: `--config` (must exist), else `fastfn.toml` in the functions folder when there is one.
pub fn locate(flag: Option<&Path>, functions_root: Option<&Path>) -> Result<Option<PathBuf>, String> {
    match flag {
        Some(path) if path.is_file() => Ok(Some(path.to_path_buf())),
        Some(path) => Err(format!("--config `{}`: no such file", path.display())),
        None => Ok(functions_root.map(|root| root.join(FILE_NAME)).filter(|p| p.is_file())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<FileValues, Vec<String>> {
        parse(Path::new("/srv/fns/fastfn.toml"), text)
    }

    #[test]
    fn every_kind_becomes_its_variables_text() {
        let file = parsed(
            r#"
listen = "0.0.0.0:9000"
nginx_workers = 4
strict_fs = false
runtimes = ["python", "node"]
[defaults]
timeout_ms = 5000
[console]
trusted_proxy_cidrs = ["10.0.0.0/8"]
"#,
        )
        .expect("valid");
        assert_eq!(file.get("listen"), Some("0.0.0.0:9000"));
        assert_eq!(file.get("nginx_workers"), Some("4"));
        assert_eq!(file.get("strict_fs"), Some("0"));
        assert_eq!(file.get("runtimes"), Some("python,node"));
        assert_eq!(file.get("defaults.timeout_ms"), Some("5000"));
        assert_eq!(file.get("console.trusted_proxy_cidrs"), Some("10.0.0.0/8"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_file_and_the_key() {
        let problems = parsed("timeout = 5\n[defaults]\ntimeout_mss = 1\nmax_queue = \"many\"\n[console]\nlocal_only = 1\n").expect_err("invalid");
        let all = problems.join("\n");
        assert!(all.contains("/srv/fns/fastfn.toml: unknown key `timeout`"), "{all}");
        assert!(all.contains("unknown key `defaults.timeout_mss` (did you mean `defaults.timeout_ms`?)"), "{all}");
        assert!(all.contains("`defaults.max_queue` must be a whole number, got the string \"many\""), "{all}");
        assert!(all.contains("`console.local_only` must be true or false, got integer `1`"), "{all}");
        assert_eq!(problems.len(), 4, "{all}");
    }

    #[test]
    fn the_admin_token_is_refused_and_bad_toml_says_where() {
        let all = parsed("[console]\nadmin_token = \"abc\"\n").expect_err("token").join("\n");
        assert!(all.contains("`console.admin_token` is not allowed here") && all.contains("admin_token_file"), "{all}");
        assert!(!all.contains("abc"), "the value is not echoed: {all}");
        let all = parsed("listen = \n").expect_err("toml").join("\n");
        assert!(all.starts_with("/srv/fns/fastfn.toml: not valid TOML") && all.contains("line 1"), "{all}");
        let all = parsed("[nope]\nx = 1\n").expect_err("section").join("\n");
        assert!(all.contains("unknown key `nope.x` (sections: binaries, console, defaults, worker_limits)"), "{all}");
    }

    #[test]
    fn the_environment_wins_over_the_file_and_problems_name_the_source() {
        let file = parsed("[defaults]\ntimeout_ms = 0\nmax_queue = 9\n").expect("valid");
        let sources = Sources::with_env(Some(file), &[(env::DEFAULT_MAX_QUEUE, "7")]);
        assert_eq!(sources.get(env::DEFAULT_MAX_QUEUE).as_deref(), Some("7"));
        assert_eq!(sources.origin(env::DEFAULT_MAX_QUEUE), Origin::Env(env::DEFAULT_MAX_QUEUE));
        assert_eq!(sources.get(env::DEFAULT_TIMEOUT_MS).as_deref(), Some("0"));
        assert_eq!(sources.origin(env::DEFAULT_TIMEOUT_MS), Origin::File(PathBuf::from("/srv/fns/fastfn.toml")));
        assert_eq!(sources.origin(env::DEFAULT_MAX_BODY_BYTES), Origin::Default);
        assert_eq!(
            sources.explain(format!("{} must be a whole number ≥ 1, got `0`", env::DEFAULT_TIMEOUT_MS)),
            "/srv/fns/fastfn.toml: `defaults.timeout_ms` must be a whole number ≥ 1, got `0`"
        );
        let from_env = format!("{} must be a whole number ≥ 0, got `x`", env::DEFAULT_MAX_QUEUE);
        assert_eq!(sources.explain(from_env.clone()), from_env);
    }

    #[test]
    fn every_key_has_a_distinct_variable() {
        let mut seen = std::collections::BTreeSet::new();
        for key in KEYS {
            assert!(seen.insert(key.env), "{} maps to {} twice", key.path, key.env);
            assert!(!(key.default)().is_empty());
        }
    }
}
