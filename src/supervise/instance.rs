//! One running instance: its settings, run dir, workers and gateway, and the operations the control socket offers
//! on them (status, reload). Startup and reload share the steps that turn the functions folder into a catalog and
//! the gateway's config.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::workers::Workers;
use crate::binaries::NginxFlavor;
use crate::catalog::{self, Catalog};
use crate::config::Settings;
use crate::discover;
use crate::gateway::GatewaySettings;
use crate::render::{self, NginxContext};
use crate::rundir::RunDir;
use crate::types::Mode;

pub struct Instance {
    pub settings: Settings,
    pub run_dir: RunDir,
    pub workers: Arc<Workers>,
    gateway_pid: AtomicU32,
    started: Instant,
    reloading: tokio::sync::Mutex<()>,
}

impl Instance {
    pub fn new(settings: Settings, run_dir: RunDir, workers: Arc<Workers>) -> Arc<Instance> {
        Arc::new(Instance { settings, run_dir, workers, gateway_pid: AtomicU32::new(0), started: Instant::now(), reloading: tokio::sync::Mutex::new(()) })
    }

    pub fn set_gateway_pid(&self, pid: u32) {
        self.gateway_pid.store(pid, Ordering::Relaxed);
    }

    /// What `status` and a trusted `/_fn/health` show: the runtimes the catalog uses and every function's worker.
    /// `status` is `degraded` when a runtime with functions has no interpreter.
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
        let degraded = runtimes.values().any(|r| r["up"] == false);
        json!({
            "status": if degraded { "degraded" } else { "ok" },
            "mode": self.settings.mode,
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "listen": self.settings.listen.to_string(),
            "functions_root": self.settings.functions_root,
            "runtimes": runtimes,
            "functions": self.workers.snapshot(),
        })
    }

    /// Re-discovers the functions folder, installs the new catalog and gateway config, restarts workers lazily and
    /// has nginx reload (HUP: new workers with the new catalog; old ones finish what they serve). An invalid folder
    /// keeps the last good state serving.
    pub async fn reload(&self) -> Result<Value, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let (catalog, warnings) = self.prepare().map_err(|e| format!("{e:#}"))?;
        let catalog = Arc::new(catalog);
        self.workers.replace_catalog(Arc::clone(&catalog));
        let pid = self.gateway_pid.load(Ordering::Relaxed);
        if let Ok(raw) = i32::try_from(pid) {
            if raw > 0 {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGHUP)
                    .map_err(|e| format!("cannot signal nginx to reload: {e}"))?;
            }
        }
        tracing::info!(functions = catalog.functions.len(), routes = catalog.routes.len(), "reloaded");
        Ok(json!({
            "ok": true,
            "functions": catalog.functions.len(),
            "routes": catalog.routes.len(),
            "conflicts": catalog.conflicts,
            "warnings": warnings,
        }))
    }

    /// Discovery → catalog.json → gateway.json → nginx.conf (checked with `nginx -t`). Used at start and on reload.
    pub fn prepare(&self) -> anyhow::Result<(Catalog, Vec<String>)> {
        prepare(&self.settings, &self.run_dir)
    }
}

pub fn prepare(settings: &Settings, run_dir: &RunDir) -> anyhow::Result<(Catalog, Vec<String>)> {
    let gateway_gid = settings.gateway_user.as_ref().map(|u| u.gid);
    let found = discover::discover(&settings.functions_root)?;
    for warning in &found.warnings {
        tracing::warn!("{warning}");
    }
    let catalog = Catalog::build(&settings.functions_root, &found, &run_dir.sockets);
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
        guard: settings.guard.clone(),
    };
    gateway.write(&run_dir.gateway_settings(), gateway_gid).with_context(|| format!("cannot write `{}`", run_dir.gateway_settings().display()))?;
    let ctx = nginx_context(settings, run_dir, &catalog);
    render::install(&settings.nginx, &ctx, &run_dir.nginx_conf(), &run_dir.error_log())?;
    Ok((catalog, found.warnings))
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
    }
}

