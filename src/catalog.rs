//! The catalog: what discovery found, in the shape the Lua gateway loads (docs/catalog.md). Routes are sorted into
//! match order here, once, so the gateway never sorts per request.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::discover::{Discovery, Route};
use crate::types::{Method, Runtime};

pub const SCHEMA_VERSION: u32 = 1;
/// Names, sizes and modification times of the files in a function's folder (three levels, at most 2000 entries,
/// skipping dot-folders and dependency folders), hashed: cheap, and it changes when the code does.
pub fn folder_fingerprint(dir: &Path) -> String {
    fn walk(dir: &Path, depth: usize, seen: &mut usize, hash: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            *seen += 1;
            if *seen > 2000 {
                return;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || ["node_modules", "__pycache__", "vendor"].contains(&name.as_ref()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
            let record = format!("{}|{}|{}|{}", entry.path().display(), meta.len(), modified, meta.is_dir());
            for byte in record.bytes() {
                *hash ^= u64::from(byte);
                *hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            if meta.is_dir() && depth < 3 {
                walk(&entry.path(), depth + 1, seen, hash);
            }
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    walk(dir, 0, &mut 0, &mut hash);
    format!("{hash:016x}")
}

/// Workers in a function's pool: `worker_pool.max_workers`, else the number of cores; at most 64. Each starts on
/// demand (the gateway spreads requests over them) and stops after its idle time.
pub fn pool_size(max_workers: Option<u64>) -> usize {
    let cores = std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1);
    max_workers.map(|n| n as usize).filter(|n| *n > 0).unwrap_or(cores).clamp(1, 64)
}

fn yes() -> bool {
    true
}

/// How long a cold-started worker may sit without a request before it stops (upstream's pool default).
pub const DEFAULT_IDLE_TTL_SECONDS: u64 = 300;

/// Limits for functions that do not set their own (`FN_DEFAULT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub timeout_ms: u64,
    pub max_body_bytes: u64,
    pub max_concurrency: u64,
    /// A burst beyond the concurrency limit waits (up to the timeout) instead of being refused at once.
    pub max_queue: u64,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults { timeout_ms: 2500, max_body_bytes: 1024 * 1024, max_concurrency: 20, max_queue: 256 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Catalog {
    pub schema_version: u32,
    pub generated_at: String,
    pub functions_root: PathBuf,
    pub functions: Vec<CatalogFunction>,
    pub routes: Vec<CatalogRoute>,
    pub conflicts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogFunction {
    pub id: String,
    pub name: String,
    pub runtime: Runtime,
    pub dir: PathBuf,
    pub entry: PathBuf,
    pub handler: String,
    /// One unix socket per worker of its pool (`<id>-<n>.sock`); empty for Lua, which runs inside the gateway.
    pub sockets: Vec<PathBuf>,
    pub timeout_ms: u64,
    pub max_body_bytes: u64,
    /// Requests served at once (0 = unlimited): `worker_pool.max_workers`, else `max_concurrency`, else the default.
    pub max_concurrency: u64,
    /// Requests that may wait for a slot beyond that; more are refused with `overflow_status`.
    pub max_queue: u64,
    /// How long a queued request waits before it is refused.
    pub queue_timeout_ms: u64,
    /// 429 or 503, with `Retry-After`.
    pub overflow_status: u16,
    /// Adds the X-Fn-* debug headers to its responses.
    pub debug_headers: bool,
    /// Started with the stack and restarted when it exits; readiness waits for it, health counts it.
    #[serde(default)]
    pub warm: bool,
    /// `false` when its fn.config.json says `"strict_fs": false`: it may read its own fn.env.json/fn.config.json.
    #[serde(default = "yes")]
    pub strict_fs: bool,
    /// `"sandbox": {"exec": true}`: it may run other programs.
    #[serde(default)]
    pub allow_exec: bool,
    /// A worker that is not warm stops after this many seconds without a request (0 = never).
    #[serde(default)]
    pub idle_ttl_seconds: u64,
    /// `invoke.allow_hosts`: empty = any host; `*.example.com` matches subdomains, not the apex.
    pub allow_hosts: Vec<String>,
    /// Why its fn.config.json is invalid; the gateway answers 503 `function misconfigured` meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// The version label (`v2`), absent for the default version; handlers see it as `context.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Go: the compiled worker binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
    /// Go: why the handler did not build (the compiler's message); it answers 500 until it builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_error: Option<String>,
    /// A fingerprint of the files in its folder (names, sizes, modification times): a reload restarts its workers
    /// only when this or its settings change.
    #[serde(default)]
    pub code_hash: String,
    /// Where its installed dependencies are (requirements.txt / package.json / composer.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps_dir: Option<PathBuf>,
    /// Why its dependencies did not install; it answers 503 until they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps_error: Option<String>,
    /// Set on reload when a new fn.config.json was invalid: this entry is the last good version, still serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_edit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogRoute {
    pub path: String,
    pub methods: BTreeSet<Method>,
    pub function: String,
    pub dynamic: bool,
}

impl Catalog {
    /// Builds the catalog from a discovery; each worker's socket is `<socket_dir>/<id>.sock`.
    pub fn build(root: &Path, found: &Discovery, socket_dir: &Path, defaults: &Defaults) -> Catalog {
        // File routes share folders: fingerprint each folder once.
        let mut fingerprints: std::collections::HashMap<PathBuf, String> = std::collections::HashMap::new();
        for f in &found.functions {
            fingerprints.entry(f.dir.clone()).or_insert_with(|| folder_fingerprint(&f.dir));
        }
        let functions = found
            .functions
            .iter()
            .map(|f| CatalogFunction {
                id: f.id.clone(),
                name: f.name.clone(),
                runtime: f.runtime,
                dir: f.dir.clone(),
                entry: f.entry.clone(),
                handler: f.config.handler.clone().unwrap_or_else(|| "handler".to_string()),
                sockets: if f.runtime.in_process() {
                    Vec::new()
                } else {
                    (0..pool_size(f.config.max_workers)).map(|i| socket_dir.join(format!("{}-{i}.sock", f.id))).collect()
                },
                timeout_ms: f.config.timeout_ms.unwrap_or(defaults.timeout_ms),
                max_body_bytes: f.config.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                max_concurrency: f.config.max_workers.or(f.config.max_concurrency).unwrap_or(defaults.max_concurrency),
                max_queue: f.config.max_queue.unwrap_or(defaults.max_queue),
                queue_timeout_ms: f.config.queue_timeout_ms.or(f.config.timeout_ms).unwrap_or(defaults.timeout_ms),
                overflow_status: f.config.overflow_status.unwrap_or(429),
                debug_headers: f.config.debug_headers,
                warm: f.config.warm.unwrap_or(false),
                strict_fs: f.config.strict_fs.unwrap_or(true),
                allow_exec: f.config.allow_exec,
                idle_ttl_seconds: f.config.idle_ttl_seconds.unwrap_or(DEFAULT_IDLE_TTL_SECONDS),
                allow_hosts: f.config.allow_hosts.clone(),
                config_error: f.config_error.clone(),
                refused_edit: None,
                version: f.version.clone(),
                binary: None,
                build_error: None,
                deps_dir: None,
                deps_error: None,
                code_hash: fingerprints.get(&f.dir).cloned().unwrap_or_default(),
            })
            .collect();
        let mut routes: Vec<&Route> = found.routes.iter().collect();
        routes.sort_by_key(|r| match_order(&r.path));
        Catalog {
            schema_version: SCHEMA_VERSION,
            generated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            functions_root: root.to_path_buf(),
            functions,
            routes: routes
                .into_iter()
                .map(|r| CatalogRoute { path: r.path.clone(), methods: r.methods.clone(), function: r.function.clone(), dynamic: r.is_dynamic() })
                .collect(),
            conflicts: found.conflicts.clone(),
        }
    }

    /// Keeps the last good version of functions whose fn.config.json became invalid since `previous` (a reload):
    /// their old settings and routes stay, and the refused edit is recorded for `status`.
    pub fn keep_last_good(&mut self, previous: &Catalog) {
        let mut kept = Vec::new();
        for function in &mut self.functions {
            let Some(error) = function.config_error.clone() else { continue };
            let Some(old) = previous.function(&function.id).filter(|f| f.config_error.is_none()) else { continue };
            *function = CatalogFunction { refused_edit: Some(error), ..old.clone() };
            kept.push(function.id.clone());
        }
        if kept.is_empty() {
            return;
        }
        self.routes.retain(|r| !kept.contains(&r.function));
        let taken: BTreeSet<&str> = self.routes.iter().map(|r| r.path.as_str()).collect();
        let old_routes: Vec<CatalogRoute> =
            previous.routes.iter().filter(|r| kept.contains(&r.function) && !taken.contains(r.path.as_str())).cloned().collect();
        self.routes.extend(old_routes);
        self.routes.sort_by_key(|r| match_order(&r.path));
    }

    pub fn function(&self, id: &str) -> Option<&CatalogFunction> {
        self.functions.iter().find(|f| f.id == id)
    }

    /// The largest body any function accepts: nginx's own limit is set to it, the gateway checks each function's.
    pub fn max_body_bytes(&self) -> u64 {
        self.functions.iter().map(|f| f.max_body_bytes).max().unwrap_or(Defaults::default().max_body_bytes)
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Sort key: exact routes first (by path), then dynamic ones by more static segments, more segments, fewer
/// catch-alls, more single params, then path.
type MatchOrder = (bool, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>, usize, std::cmp::Reverse<usize>, String);

fn match_order(path: &str) -> MatchOrder {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let catch_alls = segments.iter().filter(|s| s.starts_with(':') && s.ends_with('*')).count();
    let params = segments.iter().filter(|s| s.starts_with(':') && !s.ends_with('*')).count();
    let statics = segments.len() - catch_alls - params;
    let dynamic = catch_alls + params > 0;
    (
        dynamic,
        std::cmp::Reverse(if dynamic { statics } else { 0 }),
        std::cmp::Reverse(if dynamic { segments.len() } else { 0 }),
        catch_alls,
        std::cmp::Reverse(params),
        path.to_string(),
    )
}

/// Writes `contents` to `path` atomically: a temp file in the same folder, fsync, then rename over the target.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().ok_or_else(|| std::io::Error::other("path has no parent folder"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"), std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::discover;

    #[test]
    fn routes_come_out_in_match_order_and_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in ["docs/[...path].js", "users/[id].py", "users/me.py", "users/[id]/get.posts.py", "a/b/[x]/[y].js", "python/svc/handler.py"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "").expect("write");
        }
        let found = discover(dir.path()).expect("discovers");
        let catalog = Catalog::build(dir.path(), &found, Path::new("/run/x/sock"), &Defaults::default());
        let order: Vec<&str> = catalog.routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            order,
            vec!["/svc", "/users/me", "/a/b/:x/:y", "/users/:id/posts", "/users/:id", "/docs/:path*", "/svc/:wildcard*"]
        );
        let json = catalog.to_json();
        let back: Catalog = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, catalog);
        let value: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["routes"][0]["methods"][0], "GET");
        let f = &value["functions"][0];
        assert!(f["sockets"][0].as_str().expect("socket").starts_with("/run/x/sock/"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("catalog.json");
        write_atomic(&target, b"one", 0o640).expect("first write");
        write_atomic(&target, b"two", 0o640).expect("second write");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "two");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
