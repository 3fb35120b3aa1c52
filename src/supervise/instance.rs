//! One running instance: its settings, run dir, workers and gateway, and the operations the control socket offers
//! on them (status, reload). Startup and reload share the steps that turn the functions folder into a catalog and
//! the gateway's config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::output::Masks;
use super::workers::Workers;
use crate::binaries::NginxFlavor;
use crate::catalog::{self, Catalog};
use crate::config::Settings;
use crate::discover;
use crate::fnconfig;
use crate::gateway::GatewaySettings;
use crate::render::{self, NginxContext};
use crate::rundir::RunDir;
use crate::secrets;
use crate::types::Mode;

pub struct Instance {
    pub settings: Settings,
    pub run_dir: RunDir,
    pub workers: Arc<Workers>,
    pub masks: Masks,
    gateway_pid: AtomicU32,
    /// nginx master restarts after it died, and how it last ended.
    gateway_restarts: AtomicU32,
    gateway_last_exit: std::sync::Mutex<Option<crate::types::ProcessEnd>>,
    started: Instant,
    reloading: tokio::sync::Mutex<()>,
    env_writes: tokio::sync::Mutex<()>,
    last_reload: std::sync::Mutex<Option<ReloadRecord>>,
    watching: std::sync::atomic::AtomicBool,
    notifier: std::sync::Mutex<Option<crate::systemd::Notifier>>,
}

/// The outcome of the last reload, for `status` and the trusted health snapshot.
#[derive(Debug, Clone, serde::Serialize)]
struct ReloadRecord {
    at: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A refused control-plane request: the HTTP status the gateway should answer and why.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub error: String,
}

impl Refusal {
    fn new(status: u16, error: impl Into<String>) -> Refusal {
        Refusal { status, error: error.into() }
    }
}

impl Instance {
    pub fn new(settings: Settings, run_dir: RunDir, workers: Arc<Workers>, masks: Masks) -> Arc<Instance> {
        Arc::new(Instance { settings, run_dir, workers, masks, gateway_pid: AtomicU32::new(0), gateway_restarts: AtomicU32::new(0), gateway_last_exit: std::sync::Mutex::new(None), started: Instant::now(), reloading: tokio::sync::Mutex::new(()), env_writes: tokio::sync::Mutex::new(()), last_reload: std::sync::Mutex::new(None), watching: std::sync::atomic::AtomicBool::new(false), notifier: std::sync::Mutex::new(None) })
    }

    /// Reloads then tell systemd RELOADING=1 … READY=1.
    pub fn set_notifier(&self, notifier: crate::systemd::Notifier) {
        if let Ok(mut slot) = self.notifier.lock() {
            *slot = Some(notifier);
        }
    }

    fn notify(&self, f: impl Fn(&crate::systemd::Notifier)) {
        if let Some(n) = self.notifier.lock().ok().and_then(|n| n.clone()) {
            f(&n);
        }
    }

    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::Relaxed);
    }

    pub fn set_gateway_pid(&self, pid: u32) {
        self.gateway_pid.store(pid, Ordering::Relaxed);
    }

    /// Records that the nginx master died on its own (it is restarted next).
    pub fn gateway_died(&self, end: Option<crate::types::ProcessEnd>) {
        self.gateway_restarts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.gateway_last_exit.lock() {
            *last = end;
        }
    }

    /// What `status` and a trusted `/_fn/health` show: the runtimes the catalog uses and every function's worker.
    /// `status` is `degraded` when a runtime with functions has no interpreter, a warm function's worker is down, or a
    /// function is in a crash loop.
    pub fn status(&self) -> Value {
        let used: std::collections::BTreeSet<_> = self.workers.catalog().functions.iter().map(|f| f.runtime).collect();
        let runtimes: serde_json::Map<String, Value> = self
            .workers
            .interpreters()
            .iter()
            .filter(|(runtime, _)| used.contains(*runtime))
            .map(|(runtime, found)| {
                let view = match found {
                    Ok(path) => json!({"up": true, "interpreter": path}),
                    Err(why) => json!({"up": false, "error": why}),
                };
                (runtime.as_str().to_string(), view)
            })
            .collect();
        let functions = self.workers.snapshot();
        let cold_warm: Vec<&str> = functions.iter().filter(|f| f.warm && f.state != "running").map(|f| f.name.as_str()).collect();
        let failed: Vec<&str> = functions.iter().filter(|f| f.state == "failed").map(|f| f.name.as_str()).collect();
        let degraded = runtimes.values().any(|r| r["up"] == false) || !cold_warm.is_empty() || !failed.is_empty();
        let (me, nginx_master) = (std::process::id(), self.gateway_pid.load(Ordering::Relaxed));
        let nginx_workers = if nginx_master > 0 { super::usage::children(nginx_master) } else { Vec::new() };
        let mut pids = vec![me, nginx_master];
        pids.extend(&nginx_workers);
        pids.extend(functions.iter().flat_map(|f| f.processes.iter().map(|p| p.pid)));
        let usage = super::usage::measure(&pids);
        let usage_of = |pid: u32| usage.get(&pid).copied().unwrap_or_default();
        let mut functions = serde_json::to_value(&functions).unwrap_or(Value::Null);
        for process in functions.as_array_mut().into_iter().flatten().filter_map(|f| f["processes"].as_array_mut()).flatten() {
            let used = usage_of(process["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).unwrap_or(0));
            process["rss_bytes"] = json!(used.rss_bytes);
            process["cpu_ms"] = json!(used.cpu_ms);
        }
        let nginx_workers: Vec<Value> = nginx_workers.iter().map(|pid| json!({"pid": pid, "rss_bytes": usage_of(*pid).rss_bytes, "cpu_ms": usage_of(*pid).cpu_ms})).collect();
        json!({
            "status": if degraded { "degraded" } else { "ok" },
            "mode": self.settings.mode,
            "pid": me,
            "uptime_s": self.started.elapsed().as_secs(),
            "usage": usage_of(me),
            "listen": self.settings.listen.to_string(),
            "functions_root": self.settings.functions_root,
            "runtimes": runtimes,
            "nginx": {
                "pid": nginx_master,
                "usage": usage_of(nginx_master),
                "workers": nginx_workers,
                "restarts": self.gateway_restarts.load(Ordering::Relaxed),
                "last_exit": self.gateway_last_exit.lock().map(|l| *l).unwrap_or(None),
            },
            "warm_down": cold_warm,
            // Functions in a crash loop (five quick crashes in a row).
            "failed": failed,
            "sandbox": self.workers.sandbox_view(),
            "functions": functions,
            "reload": {
                // Hot reload: the folder watcher is running.
                "watching": self.watching.load(Ordering::Relaxed),
                "last": self.last_reload.lock().map(|r| r.clone()).unwrap_or(None),
            },
        })
    }

    /// Re-discovers the functions folder, installs the new catalog and gateway config, restarts workers lazily and
    /// has nginx reload (HUP: new workers with the new catalog; old ones finish what they serve). An invalid folder
    /// keeps the last good state serving.
    pub async fn reload(&self) -> Result<Value, String> {
        let _one_at_a_time = self.reloading.lock().await;
        self.notify(|n| n.reloading());
        let result = match self.reload_locked() {
            Ok((summary, master, old_workers)) => {
                // Report success only once the new catalog is what every accepting nginx worker serves.
                if !super::nginx::old_workers_stopped_accepting(master, &old_workers, std::time::Duration::from_secs(5)).await {
                    tracing::warn!("nginx workers from before the reload still accept connections after 5 s");
                }
                Ok(summary)
            }
            Err(why) => Err(why),
        };
        self.notify(|n| n.ready(&format!("serving {} function(s)", self.workers.catalog().functions.len())));
        let record = ReloadRecord {
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ok: result.is_ok(),
            error: result.as_ref().err().cloned(),
        };
        if let Err(why) = &result {
            tracing::warn!("reload failed, the last good catalog keeps serving: {why}");
        }
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(record);
        }
        result
    }

    /// Returns the summary, nginx's master pid and the workers it had before the HUP.
    fn reload_locked(&self) -> Result<(Value, u32, Vec<u32>), String> {
        let started = Instant::now();
        let (catalog, warnings) = self.prepare().map_err(|e| format!("{e:#}"))?;
        let catalog = Arc::new(catalog);
        self.workers.replace_catalog(Arc::clone(&catalog));
        // Warm functions were stopped with the others: bring them back with the new code, in the background.
        let workers = Arc::clone(&self.workers);
        tokio::spawn(async move {
            workers.start_warm().await;
        });
        let pid = self.gateway_pid.load(Ordering::Relaxed);
        let old_workers = super::nginx::accepting_workers(pid);
        if let Ok(raw) = i32::try_from(pid) {
            if raw > 0 {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGHUP)
                    .map_err(|e| format!("cannot signal nginx to reload: {e}"))?;
            }
        }
        // The time to discover, install, render and check: nginx then swaps its workers in the background.
        tracing::info!(functions = catalog.functions.len(), routes = catalog.routes.len(), took_ms = started.elapsed().as_millis() as u64, "reloaded");
        let summary = json!({
            "ok": true,
            "functions": catalog.functions.len(),
            "routes": catalog.routes.len(),
            "conflicts": catalog.conflicts,
            "warnings": warnings,
        });
        Ok((summary, pid, old_workers))
    }

    /// Finds a function by catalog name (and runtime, when two runtimes use the name).
    fn find_function(&self, name: Option<&str>, runtime: Option<&str>) -> Result<crate::catalog::CatalogFunction, Refusal> {
        let name = name.filter(|n| !n.is_empty()).ok_or_else(|| Refusal::new(400, "the `function` parameter is required"))?;
        let catalog = self.workers.catalog();
        let matches: Vec<_> = catalog.functions.iter().filter(|f| f.name == name && runtime.is_none_or(|r| f.runtime.as_str() == r)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Refusal::new(404, "unknown function")),
            _ => Err(Refusal::new(400, "several runtimes have a function of that name: add `runtime`")),
        }
    }

    /// A function's environment as the API shows it: secret values `<hidden>`.
    pub fn function_env(&self, name: Option<&str>, runtime: Option<&str>) -> Result<Value, Refusal> {
        let function = self.find_function(name, runtime)?;
        let env = secrets::read(&function.dir).map_err(|e| Refusal::new(422, e.to_string()))?;
        Ok(json!({"function": function.name, "runtime": function.runtime, "env": secrets::masked(&env)}))
    }

    /// Applies an update to a function's `fn.env.json` (written atomically, mode 0600, owned like its folder), then
    /// reloads so the gateway hands out the new values.
    pub async fn put_function_env(&self, name: Option<&str>, runtime: Option<&str>, update: &Value) -> Result<Value, Refusal> {
        let function = self.find_function(name, runtime)?;
        {
            let _one_writer = self.env_writes.lock().await;
            let current = secrets::read(&function.dir).map_err(|e| Refusal::new(422, e.to_string()))?;
            let next = secrets::merge(&function.dir, &current, update).map_err(|e| Refusal::new(400, e.problem))?;
            let path = function.dir.join(secrets::FILE_NAME);
            catalog::write_atomic(&path, secrets::to_file_json(&next).as_bytes(), 0o600)
                .map_err(|e| Refusal::new(500, format!("cannot write {}: {e}", secrets::FILE_NAME)))?;
            if let Ok(meta) = std::fs::metadata(&function.dir) {
                use std::os::unix::fs::MetadataExt;
                let _ = crate::rundir::chown(&path, Some(meta.uid()), Some(meta.gid()));
            }
            tracing::info!(function = %function.name, keys = next.len(), "fn.env.json updated through the control plane");
        }
        self.reload().await.map_err(|e| Refusal::new(422, e))?;
        self.function_env(Some(&function.name), Some(function.runtime.as_str()))
    }

    /// A function's `fn.config.json` as written, and the values the catalog applies.
    pub fn function_config(&self, name: Option<&str>, runtime: Option<&str>) -> Result<Value, Refusal> {
        let function = self.find_function(name, runtime)?;
        let path = function.dir.join(fnconfig::FILE_NAME);
        let raw = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<Value>(&text).map_err(|e| Refusal::new(422, format!("{} in {}: not valid JSON ({e})", fnconfig::FILE_NAME, function.dir.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
            Err(e) => return Err(Refusal::new(500, format!("cannot read {}: {e}", fnconfig::FILE_NAME))),
        };
        let methods: Vec<String> = self
            .workers
            .catalog()
            .routes
            .iter()
            .filter(|r| r.function == function.id)
            .flat_map(|r| r.methods.iter().map(|m| format!("{m:?}").to_ascii_uppercase()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(json!({
            "function": function.name,
            "runtime": function.runtime,
            "config": raw,
            "applied": {
                "timeout_ms": function.timeout_ms,
                "max_body_bytes": function.max_body_bytes,
                "max_concurrency": function.max_concurrency,
                "handler": function.handler,
                "methods": methods,
                "allow_hosts": function.allow_hosts,
            },
        }))
    }

    /// Replaces a function folder's `fn.config.json` after strict validation (every problem reported, each naming
    /// its field), then reloads. Nothing is written when the config is invalid.
    pub async fn put_function_config(&self, name: Option<&str>, runtime: Option<&str>, config: &Value) -> Result<Value, Refusal> {
        let function = self.find_function(name, runtime)?;
        let Value::Object(map) = config else { return Err(Refusal::new(400, "the request body must be a JSON object")) };
        fnconfig::validate(map).map_err(|problems| Refusal::new(400, problems.join("; ")))?;
        {
            let _one_writer = self.env_writes.lock().await;
            let path = function.dir.join(fnconfig::FILE_NAME);
            let text = serde_json::to_string_pretty(config).unwrap_or_default() + "\n";
            catalog::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| Refusal::new(500, format!("cannot write {}: {e}", fnconfig::FILE_NAME)))?;
            if let Ok(meta) = std::fs::metadata(&function.dir) {
                use std::os::unix::fs::MetadataExt;
                let _ = crate::rundir::chown(&path, Some(meta.uid()), Some(meta.gid()));
            }
            tracing::info!(function = %function.name, "fn.config.json updated through the control plane");
        }
        self.reload().await.map_err(|e| Refusal::new(422, e))?;
        self.function_config(Some(&function.name), Some(function.runtime.as_str()))
    }

    /// The last `lines` lines of the instance's logs (`error`, `access`, `runtime` or `all`), optionally only a
    /// function's runtime lines; secret values masked.
    pub fn logs(&self, file: &str, lines: usize, function: Option<&str>) -> Result<Value, Refusal> {
        let files: &[&str] = match file {
            "all" => &["error", "access", "runtime"],
            "error" => &["error"],
            "access" => &["access"],
            "runtime" => &["runtime"],
            _ => return Err(Refusal::new(400, "file must be one of error, access, runtime, all")),
        };
        let prefix = function.map(|f| format!("[fn:{f}]"));
        let mut out = serde_json::Map::new();
        for name in files {
            let path = self.run_dir.logs.join(format!("{name}.log"));
            let mut tail = tail_lines(&path, lines, |line| prefix.as_deref().is_none_or(|p| line.starts_with(p)));
            for line in &mut tail {
                *line = self.masks.mask(line);
            }
            out.insert((*name).to_string(), json!(tail));
        }
        Ok(Value::Object(out))
    }

    /// Discovery → catalog.json, secrets.json, gateway.json → nginx.conf (checked with `nginx -t`), and the new
    /// log masks. Used on reload; start calls `prepare` directly.
    fn prepare(&self) -> anyhow::Result<(Catalog, Vec<String>)> {
        let prepared = prepare(&self.settings, &self.run_dir, Some(&self.workers.catalog()))?;
        self.masks.set(prepared.masks);
        Ok((prepared.catalog, prepared.warnings))
    }
}

/// What one discovery produced.
pub struct Prepared {
    pub catalog: Catalog,
    pub warnings: Vec<String>,
    /// Secret values (and their base64 forms) to mask in log lines.
    pub masks: Vec<String>,
}

/// The last `count` lines of a file that pass `keep`, reading at most its last 8 MiB.
fn tail_lines(path: &std::path::Path, count: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 8 * 1024 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(WINDOW);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    // A window that starts mid-file starts mid-line: drop that partial first line.
    let skip_first = start > 0;
    let mut kept: Vec<String> = text.lines().skip(usize::from(skip_first)).filter(|l| keep(l)).map(str::to_string).collect();
    let excess = kept.len().saturating_sub(count);
    kept.drain(..excess);
    kept
}

/// `previous` is the catalog being served (on reload): a function whose fn.config.json became invalid keeps its
/// last good version.
pub fn prepare(settings: &Settings, run_dir: &RunDir, previous: Option<&Catalog>) -> anyhow::Result<Prepared> {
    let gateway_gid = settings.gateway_user.as_ref().map(|u| u.gid);
    let found = discover::discover_with(&settings.functions_root, discover::Options {
            force_url: settings.force_url,
            ignore_dirs: settings.extra_ignore_dirs.clone(),
            runtimes: settings.runtimes.clone(),
        })?;
    let mut warnings = found.warnings.clone();
    let mut catalog = Catalog::build(&settings.functions_root, &found, &run_dir.sockets, &settings.defaults);
    if let Some(previous) = previous {
        catalog.keep_last_good(previous);
    }
    build_go_functions(settings, run_dir, &mut catalog, &mut warnings);
    install_dependencies(settings, &mut catalog, &mut warnings);

    // Each function's own fn.env.json (next to its handler); a broken one leaves that function without env.
    let mut env_by_dir: BTreeMap<PathBuf, secrets::Env> = BTreeMap::new();
    for function in &catalog.functions {
        if env_by_dir.contains_key(&function.dir) {
            continue;
        }
        let env = secrets::read(&function.dir).unwrap_or_else(|e| {
            warnings.push(format!("{e}; the functions there get no env until it is fixed"));
            secrets::Env::new()
        });
        env_by_dir.insert(function.dir.clone(), env);
    }
    let mut by_function = serde_json::Map::new();
    for function in &catalog.functions {
        if let Some(env) = env_by_dir.get(&function.dir).filter(|e| !e.is_empty()) {
            let values: serde_json::Map<String, Value> = env.iter().map(|(k, v)| (k.clone(), Value::String(v.value.clone()))).collect();
            by_function.insert(function.id.clone(), Value::Object(values));
        }
    }
    let masks = secrets::mask_set(env_by_dir.values().flat_map(|env| env.values().filter(|v| v.is_secret).map(|v| v.value.as_str())));
    let secrets_path = run_dir.secrets_path();
    catalog::write_atomic(&secrets_path, Value::Object(by_function).to_string().as_bytes(), 0o640)
        .with_context(|| format!("cannot write `{}`", secrets_path.display()))?;
    if gateway_gid.is_some() {
        crate::rundir::chown(&secrets_path, None, gateway_gid)?;
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let catalog_path = run_dir.catalog_path();
    catalog::write_atomic(&catalog_path, catalog.to_json().as_bytes(), 0o640).with_context(|| format!("cannot write `{}`", catalog_path.display()))?;
    if gateway_gid.is_some() {
        crate::rundir::chown(&catalog_path, None, gateway_gid)?;
    }
    let gateway = GatewaySettings {
        mode: settings.mode,
        catalog_path,
        control_socket: run_dir.control_socket.clone(),
        cold_start_timeout_ms: settings.cold_start_timeout_ms,
        secrets_path,
        guard: settings.guard.clone(),
    };
    gateway.write(&run_dir.gateway_settings(), gateway_gid).with_context(|| format!("cannot write `{}`", run_dir.gateway_settings().display()))?;
    let ctx = nginx_context(settings, run_dir, &catalog);
    render::install(&settings.nginx, &ctx, &run_dir.nginx_conf(), &run_dir.error_log())?;
    Ok(Prepared { catalog, warnings, masks })
}

/// Compiles every Go function (cached by content), before the catalog is written: a build never runs inside a
/// request's timeout. A failed build is recorded on the function, which then answers 500 with the message in dev.
fn build_go_functions(settings: &Settings, run_dir: &RunDir, catalog: &mut Catalog, warnings: &mut Vec<String>) {
    if !catalog.functions.iter().any(|f| f.runtime == crate::types::Runtime::Go) {
        return;
    }
    let go = crate::binaries::find_interpreter(crate::types::Runtime::Go, settings.go_bin.as_deref(), false);
    let wrapper = crate::assets::worker_program(&run_dir.runtimes_dir(), crate::types::Runtime::Go);
    for function in catalog.functions.iter_mut().filter(|f| f.runtime == crate::types::Runtime::Go) {
        let result = match &go {
            Ok(go) => crate::gobuild::build(go, &function.entry, &wrapper, &run_dir.go_builds, &function.id),
            Err(e) => Err(format!("{e} (hint: {})", e.hint())),
        };
        match result {
            Ok(binary) => function.binary = Some(binary),
            Err(message) => {
                warnings.push(format!("go build of `{}` failed: {message}", function.name));
                function.build_error = Some(message);
            }
        }
    }
}

/// Installs every function's dependency manifest (each distinct manifest once, in parallel up to the cores), before
/// the catalog is written: requests never wait on an installer. A failed install is recorded on the function, which
/// then answers 503 while the others serve.
fn install_dependencies(settings: &Settings, catalog: &mut Catalog, warnings: &mut Vec<String>) {
    use std::collections::BTreeMap;
    let mut manifests: BTreeMap<String, crate::deps::Manifest> = BTreeMap::new();
    let mut by_function: Vec<(usize, String)> = Vec::new();
    for (i, function) in catalog.functions.iter().enumerate() {
        if let Some(manifest) = crate::deps::manifest(function.runtime, &function.dir) {
            by_function.push((i, manifest.hash.clone()));
            manifests.entry(manifest.hash.clone()).or_insert(manifest);
        }
    }
    if manifests.is_empty() {
        return;
    }
    let base = settings.run_base.join("deps");
    if let Err(e) = std::fs::create_dir_all(&base) {
        warnings.push(format!("cannot create the dependency dir {}: {e}", base.display()));
        return;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711));
    }
    let as_root = nix::unistd::Uid::effective().is_root();
    let python = crate::binaries::find_interpreter(crate::types::Runtime::Python, settings.python_bin.as_deref(), as_root).ok();
    let installer = crate::deps::Installer {
        python: python.as_deref(),
        user: settings.worker_user.as_ref().map(|u| (u.uid, u.gid)),
        base: &base,
    };
    let cores = std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1);
    let mut results: BTreeMap<String, Result<std::path::PathBuf, String>> = BTreeMap::new();
    // Installed before (by this or another instance): nothing to run.
    let mut list: Vec<&crate::deps::Manifest> = Vec::new();
    for manifest in manifests.values() {
        let dir = crate::deps::install_dir(&base, manifest);
        if dir.join(".complete").is_file() {
            results.insert(manifest.hash.clone(), Ok(dir));
        } else {
            list.push(manifest);
        }
    }
    for chunk in list.chunks(cores) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|m| {
                    tracing::info!(manifest = %m.path.display(), "dependencies: installing");
                    let installer = &installer;
                    scope.spawn(move || (m.hash.clone(), crate::deps::install(installer, m)))
                })
                .collect();
            for handle in handles {
                if let Ok((hash, result)) = handle.join() {
                    results.insert(hash, result);
                }
            }
        });
    }
    for (i, hash) in by_function {
        let function = &mut catalog.functions[i];
        match results.get(&hash) {
            Some(Ok(dir)) => {
                tracing::info!(function = %function.name, "dependencies: ready");
                function.deps_dir = Some(dir.clone());
            }
            Some(Err(why)) => {
                warnings.push(format!("dependencies of `{}` failed to install: {why}", function.name));
                function.deps_error = Some(why.clone());
            }
            None => function.deps_error = Some("the install did not finish".into()),
        }
    }
}

fn nginx_context(settings: &Settings, run_dir: &RunDir, catalog: &Catalog) -> NginxContext {
    let max_body = catalog.max_body_bytes();
    NginxContext {
        fastfn_version: env!("CARGO_PKG_VERSION").to_string(),
        load_modules: match settings.nginx.flavor {
            NginxFlavor::OpenResty => Vec::new(),
            NginxFlavor::StockWithLuaModule => settings.nginx.modules.clone(),
        },
        user: settings.gateway_user.as_ref().map(|u| u.name.clone()),
        group: settings.gateway_user.as_ref().map(|u| u.group.clone()),
        worker_processes: settings.nginx_workers.clone(),
        run_dir: run_dir.root.clone(),
        logs_dir: run_dir.logs.clone(),
        tmp_dir: run_dir.tmp.clone(),
        lua_dir: run_dir.lua_dir(),
        error_log_level: "notice".to_string(),
        echo_logs: settings.mode == Mode::Dev,
        listen: match settings.listen {
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            std::net::SocketAddr::V4(a) => a.to_string(),
        },
        client_max_body_size: max_body,
        client_body_buffer_size: max_body.min(1024 * 1024),
        settings_path: run_dir.gateway_settings(),
        bench_ceiling: settings.bench_ceiling,
    }
}

