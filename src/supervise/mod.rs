//! The supervisor: prepares the instance, starts the gateway, serves the control socket, and stops everything on
//! SIGINT/SIGTERM.
//!
//! Theory of operation: everything runs on one thread (a current-thread tokio runtime), which is also the thread
//! that forks every child, so PDEATHSIG (tied to the forking thread) fires only when the supervisor itself dies.
//! Startup is strictly ordered — run dir, gateway code, discovery, catalog, interpreters, config checked with
//! `nginx -t`, control socket, nginx — and "ready" is announced only once nginx answers `/_fn/health`. Function
//! workers start on demand (the gateway asks over the control socket) and are owned by `workers`. The main loop
//! waits for a signal or for nginx to exit, reaping orphans reparented to us (we are a subreaper) once a second.
//! The first SIGINT/SIGTERM stops gracefully (nginx QUIT, workers SIGTERM, then SIGKILL after a grace period);
//! a second one skips the grace.

pub mod backoff;
pub mod logfile;
pub mod instance;
pub mod nginx;
pub mod output;
pub mod process;
pub mod usage;
pub mod workers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::binaries;
use crate::catalog::{self, Catalog};
use crate::config::Settings;
use crate::control::ControlServer;
use crate::rundir::RunDir;
use crate::types::{Mode, Runtime};
use nginx::Gateway;
use output::OutputSink;
use instance::Instance;
use workers::{WorkerEnv, Workers};

/// How long nginx may take to answer after it starts.
const GATEWAY_START_DEADLINE: Duration = Duration::from_secs(15);
/// Workers have no requests left once nginx has stopped; this is only for their own cleanup.
const WORKER_STOP_GRACE: Duration = Duration::from_secs(1);

/// Runs the stack until a signal stops it. Returns the process exit code.
pub async fn run(settings: Settings) -> anyhow::Result<i32> {
    process::become_subreaper().context("cannot become a child subreaper (PR_SET_CHILD_SUBREAPER)")?;
    let gateway_uid = settings.gateway_user.as_ref().map(|u| u.uid);

    let run_dir = RunDir::create(&settings.run_base, settings.listen, settings.gateway_user.as_ref())?;
    crate::assets::extract(&run_dir.lua_dir(), &run_dir.runtimes_dir())
        .with_context(|| format!("cannot write the gateway and worker programs into `{}`", run_dir.lib.display()))?;

    let prepared = instance::prepare(&settings, &run_dir, None)?;
    let masks = output::Masks::default();
    masks.set(prepared.masks);
    let catalog = Arc::new(prepared.catalog);

    let interpreters = resolve_interpreters(&settings, &catalog);
    let output = OutputSink::open(&run_dir.logs.join("runtime.log"), &run_dir.logs.join("processes"), settings.log_max_bytes, settings.mode == Mode::Dev, masks.clone())
        .with_context(|| format!("cannot open `{}`", run_dir.logs.join("runtime.log").display()))?;

    let workers = Workers::new(
        WorkerEnv {
            mode: settings.mode,
            runtimes_dir: run_dir.runtimes_dir(),
            interpreters,
            socket_owner: gateway_uid,
            cold_start_timeout: Duration::from_millis(settings.cold_start_timeout_ms),
            output: output.clone(),
            sandbox: crate::sandbox::PreparedSandbox::prepare(&settings.worker_limits, settings.worker_user.is_some())?,
            user: settings.worker_user.as_ref().map(|u| (u.uid, u.gid)),
            tmp_base: run_dir.worker_tmp.clone(),
            strict_fs: settings.strict_fs,
        },
        Arc::clone(&catalog),
    );
    let control = ControlServer::bind(&run_dir.control_socket, gateway_uid)
        .with_context(|| format!("cannot bind the control socket `{}`", run_dir.control_socket.display()))?;
    let instance = Instance::new(settings, run_dir, Arc::clone(&workers), masks);
    let (settings, run_dir) = (&instance.settings, &instance.run_dir);
    let control_task = tokio::spawn(control.serve(Arc::clone(&instance)));

    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;

    let started = Instant::now();
    let nginx_output = OutputSink::echo_only(settings.mode == Mode::Dev);
    let mut gateway = Gateway::spawn(&settings.nginx, &run_dir.root, &run_dir.nginx_conf(), &run_dir.error_log(), &nginx_output)
        .with_context(|| format!("cannot start `{}`", settings.nginx.binary.display()))?;
    instance.set_gateway_pid(gateway.pid);
    let ready = tokio::select! {
        r = nginx::wait_ready(&mut gateway, settings.listen, GATEWAY_START_DEADLINE) => r,
        _ = sigint.recv() => Err("interrupted during start".to_string()),
        _ = sigterm.recv() => Err("terminated during start".to_string()),
    };
    if let Err(why) = ready {
        gateway.stop(Duration::from_millis(500)).await;
        control_task.abort();
        let tail = error_log_tail(&run_dir.error_log(), 20);
        anyhow::bail!("the gateway did not become ready: {why}{tail}");
    }

    // "Ready" means the warm workers answer too.
    workers.run_warm_restarts();
    let failed_warm = workers.start_warm().await;
    if !failed_warm.is_empty() {
        tracing::warn!("warm functions not running: {} (health reports degraded until they are)", failed_warm.join(", "));
    }
    announce(settings, run_dir, &catalog, started.elapsed())?;
    let notifier = crate::systemd::Notifier::from_env();
    notifier.ready(&format!("serving {} function(s) on {}", catalog.functions.len(), settings.listen));
    instance.set_notifier(notifier.clone());
    // Hot reload: kept alive until shutdown. A watcher that cannot start is reported, not fatal.
    let _watcher = if settings.hot_reload {
        match crate::watch::start(&settings.functions_root, Arc::clone(&instance)) {
            Ok(watcher) => {
                instance.set_watching(true);
                tracing::info!("watching {} for changes", settings.functions_root.display());
                Some(watcher)
            }
            Err(e) => {
                let hint = e.hint().map(|h| format!(" (hint: {h})")).unwrap_or_default();
                tracing::warn!("hot reload is off: {e}{hint}");
                None
            }
        }
    } else {
        None
    };

    let mut sighup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    // nginx restarts: consecutive quick failures, for the backoff.
    let mut gateway_attempt: u32 = 0;
    let mut gateway_since = Instant::now();
    let code = loop {
        let owned: Vec<u32> = workers.alive_pids().into_iter().chain(std::iter::once(gateway.pid)).collect();
        let watchdog = async {
            match crate::systemd::Notifier::watchdog_interval() {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigint.recv() => break 0,
            _ = sigterm.recv() => break 0,
            _ = watchdog => notifier.send("WATCHDOG=1"),
            _ = sighup.recv() => {
                // SIGHUP: re-discover, re-render, check with nginx -t and reload gracefully; a bad folder keeps the
                // last good state.
                match instance.reload().await {
                    Ok(summary) => tracing::info!("reloaded on SIGHUP: {} function(s)", summary["functions"]),
                    Err(why) => tracing::warn!("SIGHUP reload failed; the last good state keeps serving: {why}"),
                }
            }
            status = gateway.child.wait() => {
                let ended = status.as_ref().ok().map(|s| crate::types::ProcessEnd::from_status(*s));
                instance.gateway_died(ended);
                let end = status.map(crate::types::ProcessEnd::from_status).map(|e| e.to_string()).unwrap_or_else(|e| e.to_string());
                // Whatever the master left (its workers) goes with its group, then it starts again after the backoff.
                process::signal_group(gateway.pid, nix::sys::signal::Signal::SIGKILL);
                gateway_attempt = backoff::next_attempt(gateway_attempt, gateway_since.elapsed());
                let delay = backoff::delay(gateway_attempt.saturating_sub(1));
                tracing::error!(exit = %end, restart_after_ms = delay.as_millis() as u64, "nginx exited unexpectedly; restarting it{}", error_log_tail(&run_dir.error_log(), 5));
                tokio::time::sleep(delay).await;
                gateway_since = Instant::now();
                match Gateway::spawn(&settings.nginx, &run_dir.root, &run_dir.nginx_conf(), &run_dir.error_log(), &nginx_output) {
                    Ok(mut restarted) => {
                        instance.set_gateway_pid(restarted.pid);
                        if let Err(why) = nginx::wait_ready(&mut restarted, settings.listen, GATEWAY_START_DEADLINE).await {
                            tracing::error!("restarted nginx is not answering yet: {why}");
                        } else {
                            tracing::info!(pid = restarted.pid, "nginx is back");
                        }
                        gateway = restarted;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot restart nginx; trying again"),
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                process::reap_orphans(&owned);
                rotate_nginx_logs(run_dir, settings.log_max_bytes, gateway.pid);
            }
        }
    };

    notifier.stopping();
    let grace = settings.shutdown_grace;
    tracing::info!("stopping: waiting up to {} ms for in-flight requests (press Ctrl-C again to force)", grace.as_millis());
    control_task.abort();
    // nginx first: it drains in-flight requests, which still need their workers; then the workers.
    let stop = async {
        gateway.stop(grace).await;
        workers.stop_all(WORKER_STOP_GRACE).await;
    };
    tokio::select! {
        _ = stop => {}
        _ = async { tokio::select! { _ = sigint.recv() => {}, _ = sigterm.recv() => {} } } => {
            tracing::warn!("forced stop");
            process::signal_group(gateway.pid, nix::sys::signal::Signal::SIGKILL);
            for pid in workers.alive_pids() {
                process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    process::reap_orphans(&[]);
    let _ = std::fs::remove_file(&run_dir.control_socket);
    let _ = std::fs::remove_dir_all(&run_dir.sockets);
    if let Some(ready_file) = &settings.ready_file {
        let _ = std::fs::remove_file(ready_file);
    }
    tracing::info!("stopped");
    Ok(code)
}

/// Resolves every supported runtime's interpreter once, at start, so a function added later (reload) finds it. Only
/// a missing interpreter that a current function needs is worth a warning.
fn resolve_interpreters(settings: &Settings, catalog: &Catalog) -> BTreeMap<Runtime, Result<PathBuf, String>> {
    let as_root = nix::unistd::Uid::effective().is_root();
    let used: std::collections::BTreeSet<Runtime> = catalog.functions.iter().map(|f| f.runtime).collect();
    // Lua runs inside nginx and Go workers are compiled binaries: neither has an interpreter to find.
    [Runtime::Python, Runtime::Node, Runtime::Php]
        .into_iter()
        .map(|runtime| {
            let override_bin = match runtime {
                Runtime::Python => settings.python_bin.as_deref(),
                Runtime::Node => settings.node_bin.as_deref(),
                _ => settings.php_bin.as_deref(),
            };
            let found = binaries::find_interpreter(runtime, override_bin, as_root).map_err(|e| {
                if used.contains(&runtime) {
                    tracing::warn!("{e}; its functions will answer 503 (hint: {})", e.hint());
                }
                e.to_string()
            });
            if let Ok(path) = &found {
                tracing::debug!(%runtime, interpreter = %path.display(), "interpreter");
            }
            (runtime, found)
        })
        .collect()
}

/// Tells humans (stderr) and scripts (one JSON line on stdout, and the ready file) that the stack serves.
fn announce(settings: &Settings, run_dir: &RunDir, catalog: &Catalog, took: Duration) -> anyhow::Result<()> {
    let url = format!("http://{}", settings.listen);
    tracing::info!(
        "{} function(s) from {} on {url} (run dir {})",
        catalog.functions.len(),
        settings.functions_root.display(),
        run_dir.root.display()
    );
    for route in &catalog.routes {
        let methods: Vec<String> = route.methods.iter().map(|m| format!("{m:?}").to_ascii_uppercase()).collect();
        let name = catalog.function(&route.function).map(|f| format!("{}:{}", f.runtime, f.name)).unwrap_or_default();
        tracing::info!("  {:<7} {} -> {name}", methods.join(","), route.path);
    }
    for conflict in &catalog.conflicts {
        tracing::warn!("  409     {conflict} (ambiguous)");
    }
    tracing::info!("ready in {} ms", took.as_millis());
    let line = json!({
        "event": "ready",
        "url": url,
        "listen": settings.listen.to_string(),
        "functions": catalog.functions.len(),
        "routes": catalog.routes.len(),
        "run_dir": run_dir.root,
        "pid": std::process::id(),
    })
    .to_string();
    println!("{line}");
    if let Some(path) = &settings.ready_file {
        catalog::write_atomic(path, format!("{line}\n").as_bytes(), 0o644).with_context(|| format!("cannot write the ready file `{}`", path.display()))?;
    }
    Ok(())
}

/// nginx writes its own error and access logs: past the size limit they are shifted to `.1` and the master is told
/// to reopen them (SIGUSR1), which it does without dropping a request.
fn rotate_nginx_logs(run_dir: &RunDir, max_bytes: u64, master: u32) {
    for path in [run_dir.error_log(), run_dir.logs.join("access.log")] {
        if logfile::outgrown(&path, max_bytes) {
            match logfile::shift_keeping_owner(&path) {
                Ok(()) => {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(master as i32), nix::sys::signal::Signal::SIGUSR1);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot rotate an nginx log"),
            }
        }
    }
}

fn error_log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("\nlast lines of {}:\n  {}", path.display(), tail.join("\n  "))
    }
}
