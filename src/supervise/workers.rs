//! Function workers: one process per function, started on first use (a cold start asked for by the gateway over
//! the control socket), handed a listening socket the supervisor bound, watched until it exits, restarted on the
//! next request after a crash, with backoff while it keeps crashing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::backoff;
use super::output::OutputSink;
use super::process::{signal_group, ChildSetup, WORKER_LISTEN_FD};
use crate::catalog::{Catalog, CatalogFunction};
use crate::frame;
use crate::types::{Mode, ProcessEnd, Runtime};

/// Environment variables passed through from the supervisor to workers; everything else is withheld.
const PASSTHROUGH_ENV: &[&str] = &["PATH", "LANG", "TZ"];

/// Fixed facts every worker start needs.
pub struct WorkerEnv {
    pub mode: Mode,
    pub runtimes_dir: PathBuf,
    /// The interpreter per runtime, or why there is none (the functions of that runtime answer 503).
    pub interpreters: BTreeMap<Runtime, Result<PathBuf, String>>,
    /// Owner of worker sockets when running as root (the gateway's uid).
    pub socket_owner: Option<u32>,
    pub cold_start_timeout: Duration,
    pub output: OutputSink,
    /// Limits, no-new-privs and seccomp, prepared once.
    pub sandbox: Arc<crate::sandbox::PreparedSandbox>,
    /// (uid, gid) workers drop to when fastfn runs as root.
    pub user: Option<(u32, u32)>,
    /// Parent of each worker's private temp dir (`TMPDIR`, `HOME`).
    pub tmp_base: PathBuf,
    /// `FN_STRICT_FS`.
    pub strict_fs: bool,
}

/// How one try to make a worker ready ended, short of an error.
enum Attempt {
    Ready,
    /// A reload replaced the function during the start.
    Superseded,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Running { pid: u32, since: Instant },
    Backoff { until: Instant },
}

struct Slot {
    /// Held while starting, so concurrent cold starts of one function wait for a single start.
    start: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

struct SlotState {
    state: State,
    attempt: u32,
    last_exit: Option<ProcessEnd>,
    /// Processes started for this function, the first included.
    starts: u32,
}

/// One running worker process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessView {
    pub pid: u32,
    pub uptime_s: u64,
}

/// One function's worker as `status` and `/_fn/health` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerView {
    pub id: String,
    pub name: String,
    pub runtime: Runtime,
    /// `cold` (not started), `running`, `backoff` (crashed; held back before the next start) or `failed` (a crash
    /// loop: five quick crashes in a row; still retried, at most 8 s apart, or at once after an edit of the function).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Workers of its pool running now, and the pool's size.
    pub workers: usize,
    /// Each running worker: pid and uptime (`status` adds RSS and CPU time).
    pub processes: Vec<ProcessView>,
    pub pool: usize,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ProcessEnd>,
    /// Started with the stack and kept running.
    pub warm: bool,
    /// Its fn.config.json is invalid: it answers 503 until fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Its dependency manifest: `ready` (installed) or `failed`; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<&'static str>,
    /// A reload refused its new fn.config.json; the last good version serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_edit: Option<String>,
}

pub struct Workers {
    /// Where exited warm workers are queued for a restart (see `run_warm_restarts`).
    warm_restarts: Mutex<Option<tokio::sync::mpsc::UnboundedSender<(String, usize, Duration)>>>,
    env: WorkerEnv,
    catalog: RwLock<Arc<Catalog>>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    alive: Mutex<HashSet<u32>>,
}

impl Workers {
    pub fn new(env: WorkerEnv, catalog: Arc<Catalog>) -> Arc<Workers> {
        Arc::new(Workers { warm_restarts: Mutex::new(None), env, catalog: RwLock::new(catalog), slots: Mutex::new(HashMap::new()), alive: Mutex::new(HashSet::new()) })
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| Arc::clone(&c)).unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// One slot per worker of a function's pool, keyed `<function id>/<index>`.
    fn slot(&self, id: &str, index: usize) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(slots.entry(slot_key(id, index)).or_insert_with(|| {
            Arc::new(Slot { start: tokio::sync::Mutex::new(()), state: Mutex::new(SlotState { state: State::Idle, attempt: 0, last_exit: None, starts: 0 }) })
        }))
    }

    /// Pids of every worker process still running (for reaping and shutdown).
    pub fn alive_pids(&self) -> Vec<u32> {
        self.alive.lock().map(|a| a.iter().copied().collect()).unwrap_or_default()
    }

    /// Makes sure worker `index` of the function's pool is running and answers ping; starts it if needed.
    pub async fn ensure(self: &Arc<Self>, id: &str, index: usize) -> Result<(), String> {
        match self.ensure_once(id, index).await? {
            Attempt::Ready => Ok(()),
            // A reload replaced the function while its worker was starting (and stopped that worker): not a crash.
            // Start the new version, once.
            Attempt::Superseded => match self.ensure_once(id, index).await? {
                Attempt::Ready => Ok(()),
                Attempt::Superseded => Err(format!("`{id}` is being reloaded; try again")),
            },
        }
    }

    async fn ensure_once(self: &Arc<Self>, id: &str, index: usize) -> Result<Attempt, String> {
        let catalog = self.catalog();
        let function = catalog.function(id).ok_or_else(|| format!("unknown function `{id}`"))?.clone();
        let socket = function.sockets.get(index).cloned().ok_or_else(|| format!("`{}` has no worker {index}", function.name))?;
        let slot = self.slot(id, index);
        let _starting = slot.start.lock().await;
        let running = matches!(slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).state, State::Running { .. });
        if running {
            // The gateway asks only when it could not connect: either a concurrent cold start already finished
            // (the worker answers) or the worker just died and we have not reaped it yet (it does not).
            if ping(&socket, Duration::from_secs(1)).await.is_ok() {
                return Ok(Attempt::Ready);
            }
            tracing::warn!(function = %function.name, index, "worker stopped answering; restarting it");
            self.kill(id, index);
        }
        {
            let st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match st.state {
                State::Running { .. } => return Ok(Attempt::Ready),
                State::Backoff { until } if Instant::now() < until => {
                    let last = st.last_exit.map(|e| format!(" ({e})")).unwrap_or_default();
                    return Err(format!(
                        "worker of `{}` crashed{last}; next start allowed in {} ms",
                        function.name,
                        until.saturating_duration_since(Instant::now()).as_millis()
                    ));
                }
                _ => {}
            }
        }
        match self.start(&function, index, &slot).await {
            Ok(()) => Ok(Attempt::Ready),
            Err(_) if self.catalog().function(id) != Some(&function) => Ok(Attempt::Superseded),
            Err(why) => {
                let mut st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // A worker that exited during start was already counted (and logged) by on_exit.
                if !matches!(st.state, State::Backoff { .. }) {
                    let delay = backoff::delay(st.attempt);
                    st.attempt = st.attempt.saturating_add(1);
                    st.state = State::Backoff { until: Instant::now() + delay };
                    log_failure(&function.name, st.attempt, &format!("worker failed to start: {why}"));
                }
                Err(why)
            }
        }
    }

    async fn start(self: &Arc<Self>, function: &CatalogFunction, index: usize, slot: &Arc<Slot>) -> Result<(), String> {
        let socket = function.sockets.get(index).cloned().ok_or_else(|| format!("`{}` has no worker {index}", function.name))?;
        // What to run: the interpreter and the worker program, or (Go) the compiled worker itself.
        let (interpreter, program) = match function.runtime {
            Runtime::Lua => return Err(format!("`{}` runs inside the gateway; it has no worker", function.name)),
            Runtime::Go => match (&function.binary, &function.build_error) {
                (Some(binary), _) => (binary.clone(), None),
                (None, Some(error)) => return Err(format!("go build failed: {error}")),
                (None, None) => return Err(format!("`{}` has not been built", function.name)),
            },
            _ if function.deps_error.is_some() => return Err(format!("the dependencies of `{}` are not installed", function.name)),
            runtime => match self.env.interpreters.get(&runtime) {
                Some(Ok(path)) => (path.clone(), Some(crate::assets::worker_program(&self.env.runtimes_dir, runtime))),
                Some(Err(why)) => return Err(why.clone()),
                None => return Err(format!("no {runtime} interpreter was resolved")),
            },
        };
        let listener = bind_socket(&socket, self.env.socket_owner)?;
        let mut unclaimed = UnclaimedSocket { path: &socket, armed: true };
        let tmp = private_tmp(&self.env.tmp_base, &format!("{}-{index}", function.id), self.env.user)?;

        let mut command = tokio::process::Command::new(&interpreter);
        command.args(program.iter());
        command
            .env_clear()
            .envs(PASSTHROUGH_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))))
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("LC_")))
            .env("FN_WORKER_LISTEN_FD", WORKER_LISTEN_FD.to_string())
            .env("FN_RUNTIME", function.runtime.as_str())
            .env("FN_FUNCTION_NAME", &function.name)
            .env("FN_FUNCTION_DIR", &function.dir)
            .env("FN_HANDLER_PATH", &function.entry)
            .env("FN_HANDLER_NAME", &function.handler)
            .env("FN_MODE", self.env.mode.as_str())
            .env("FN_ALLOWED_PEER_UIDS", self.allowed_peers())
            // A cold-started worker stops by itself once idle that long; a warm one never does.
            .env("FN_IDLE_TTL_SECONDS", if function.warm { 0 } else { function.idle_ttl_seconds }.to_string())
            // Run state never goes into the functions folder: no __pycache__ next to handlers.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(deps_env(function))
            .envs(go_env(function))
            .env("TMPDIR", &tmp)
            .env("HOME", &tmp)
            .current_dir(&function.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if std::env::var_os("PATH").is_none() {
            command.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        if let Some((uid, gid)) = self.env.user {
            // std changes gid, clears supplementary groups and changes uid in the child, before our hook runs.
            command.uid(uid).gid(gid);
        }
        let landlock = crate::sandbox::landlock_ruleset(&crate::sandbox::FsPolicy {
            function_dir: &function.dir,
            tmp: &tmp,
            runtimes_dir: &self.env.runtimes_dir,
            interpreter: &interpreter,
            deps_dir: function.deps_dir.as_deref(),
            allow_exec: function.allow_exec,
            strict_fs: self.env.strict_fs && function.strict_fs,
        })
        .map_err(|e| e.to_string())?;
        ChildSetup::sandboxed(listener.as_raw_fd(), Arc::clone(&self.env.sandbox), landlock).apply(&mut command);
        let mut child = command.spawn().map_err(|e| {
            // The worker starts in its function's folder: a folder deleted a moment ago fails the spawn with ENOENT.
            if function.dir.is_dir() {
                format!("cannot start `{}`: {e}", interpreter.display())
            } else {
                format!("the folder of `{}` is gone ({}); it is removed at the next reload", function.name, function.dir.display())
            }
        })?;
        // Our copy of the listening socket must close, so that a dead worker means "connection refused".
        drop(listener);
        let pid = child.id().ok_or("worker exited before it could be watched")?;
        self.alive.lock().map(|mut a| a.insert(pid)).ok();
        let prefix = format!("fn:{}", function.name);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(self.env.output.clone().drain(prefix.clone(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(self.env.output.clone().drain(prefix, err));
        }

        let (exited_tx, exited_rx) = oneshot::channel();
        let started = Instant::now();
        {
            let mut st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.state = State::Running { pid, since: started };
            st.starts = st.starts.saturating_add(1);
        }
        // From here the worker owns the socket: its exit (or kill) removes it.
        unclaimed.armed = false;
        let this = Arc::clone(self);
        let watched = Arc::clone(slot);
        let name = function.name.clone();
        let watched_socket = socket.clone();
        let id = function.id.clone();
        tokio::spawn(async move {
            let end = match child.wait().await {
                Ok(status) => ProcessEnd::from_status(status),
                Err(_) => ProcessEnd::Exit(-1),
            };
            this.alive.lock().map(|mut a| a.remove(&pid)).ok();
            let restart_after = this.on_exit(&watched, &name, &watched_socket, pid, end);
            let _ = exited_tx.send(end);
            // A warm function is brought back without waiting for a request (by the restart task: starting from
            // here would make this task's future contain itself).
            if let Some(delay) = restart_after.filter(|_| this.catalog().function(&id).is_some_and(|f| f.warm)) {
                if let Some(tx) = this.warm_restarts.lock().ok().and_then(|tx| tx.clone()) {
                    let _ = tx.send((id, index, delay));
                }
            }
        });

        let ping = ping(&socket, self.env.cold_start_timeout);
        tokio::select! {
            result = ping => match result {
                Ok(()) => {
                    tracing::info!(function = %function.name, pid, ms = started.elapsed().as_millis() as u64, "worker ready");
                    Ok(())
                }
                Err(why) => {
                    self.kill(&function.id, index);
                    Err(format!("worker of `{}` did not answer ping: {why}", function.name))
                }
            },
            end = exited_rx => {
                let end = end.map(|e| e.to_string()).unwrap_or_else(|_| "unknown".into());
                Err(format!("worker of `{}` exited during start ({end}); see its output above", function.name))
            }
        }
    }

    /// Records a worker's exit. Returns when it may start again if it ended on its own (for warm functions).
    fn on_exit(&self, slot: &Slot, name: &str, socket: &Path, pid: u32, end: ProcessEnd) -> Option<Duration> {
        let mut st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.last_exit = Some(end);
        match st.state {
            State::Running { pid: running, .. } if running == pid && end == ProcessEnd::Exit(0) => {
                // Exit 0 unasked is the worker's own idle timeout (FN_IDLE_TTL_SECONDS): not a crash.
                remove_socket(socket);
                st.state = State::Idle;
                tracing::info!(function = %name, pid, "worker stopped after its idle time; the next request starts it again");
                Some(Duration::ZERO)
            }
            State::Running { pid: running, since } if running == pid && end == ProcessEnd::Exit(EXIT_EXHAUSTED) && since.elapsed() >= RECYCLE_AFTER => {
                // The worker ran out of descriptors or memory (a handler leaks them) and stopped after answering:
                // a fresh one starts on the next request, without the crash backoff.
                remove_socket(socket);
                st.state = State::Idle;
                tracing::warn!(function = %name, pid, "worker recycled itself: a handler ran it out of file descriptors or memory; the next request starts a fresh one");
                Some(Duration::ZERO)
            }
            State::Running { pid: running, since } if running == pid => {
                remove_socket(socket);
                // Nobody asked it to stop: a crash. The next request restarts it, after the backoff delay.
                st.attempt = backoff::next_attempt(st.attempt, since.elapsed());
                let delay = backoff::delay(st.attempt.saturating_sub(1));
                st.state = State::Backoff { until: Instant::now() + delay };
                log_failure(name, st.attempt, &format!("worker exited unexpectedly (pid {pid}, {end}); next start in {} ms", delay.as_millis()));
                Some(delay)
            }
            _ => {
                tracing::debug!(function = %name, pid, exit = %end, "worker stopped");
                None
            }
        }
    }

    /// Starts the task that restarts warm workers after they exit (after their backoff delay).
    pub fn run_warm_restarts(self: &Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, usize, Duration)>();
        if let Ok(mut slot) = self.warm_restarts.lock() {
            *slot = Some(tx);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            while let Some((id, index, delay)) = rx.recv().await {
                let workers = Arc::clone(&this);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Err(why) = workers.ensure(&id, index).await {
                        // Its crash is logged where it is counted; a crash loop must not add a line per retry here.
                        tracing::debug!(function = %id, error = %why, "warm worker did not come back; the next request retries");
                    }
                });
            }
        });
    }

    /// Starts every warm function's worker and waits for each to answer; returns the ones that did not.
    pub async fn start_warm(self: &Arc<Self>) -> Vec<String> {
        let catalog = self.catalog();
        let mut failed = Vec::new();
        for function in catalog.functions.iter().filter(|f| f.warm && f.config_error.is_none() && f.build_error.is_none() && !f.runtime.in_process()) {
            if let Err(why) = self.ensure(&function.id, 0).await {
                tracing::debug!(function = %function.name, error = %why, "warm worker did not start");
                failed.push(function.name.clone());
            }
        }
        failed
    }

    /// Who may connect to a worker: the gateway's user and the supervisor's (for its ping).
    fn allowed_peers(&self) -> String {
        let me = nix::unistd::Uid::effective().as_raw();
        match self.env.socket_owner {
            Some(gateway) if gateway != me => format!("{gateway},{me}"),
            _ => me.to_string(),
        }
    }

    /// What the workers run under, for `status` and the trusted health snapshot.
    pub fn sandbox_view(&self) -> serde_json::Value {
        json!({
            "seccomp": self.env.sandbox.seccomp,
            "no_new_privs": true,
            "rlimits": true,
            "user": self.env.user.map(|(uid, _)| uid),
            "landlock_abi": crate::sandbox::landlock_abi(),
            "strict_fs": self.env.strict_fs,
        })
    }

    /// The interpreter of each runtime the catalog uses, or why there is none.
    pub fn interpreters(&self) -> &BTreeMap<Runtime, Result<PathBuf, String>> {
        &self.env.interpreters
    }

    /// Every catalog function with its worker's state, in catalog order.
    pub fn snapshot(&self) -> Vec<WorkerView> {
        let catalog = self.catalog();
        let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        catalog
            .functions
            .iter()
            .map(|f| {
                // The pool, summarised: running if any worker runs, backoff if one waits after a crash.
                let (mut state, mut pid, mut restarts, mut last_exit, mut running) = ("cold", None, 0, None, 0usize);
                let mut processes = Vec::new();
                for index in 0..f.sockets.len() {
                    let Some(slot) = slots.get(&slot_key(&f.id, index)) else { continue };
                    let st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match st.state {
                        State::Running { pid: p, since } => {
                            state = "running";
                            pid = pid.or(Some(p));
                            running += 1;
                            processes.push(ProcessView { pid: p, uptime_s: since.elapsed().as_secs() });
                        }
                        State::Backoff { .. } if backoff::in_crash_loop(st.attempt) && state != "running" => state = "failed",
                        State::Backoff { .. } if state == "cold" => state = "backoff",
                        _ => {}
                    }
                    restarts += st.starts.saturating_sub(1);
                    last_exit = st.last_exit.or(last_exit);
                }
                WorkerView {
                    id: f.id.clone(),
                    name: f.name.clone(),
                    runtime: f.runtime,
                    warm: f.warm,
                    state,
                    pid,
                    workers: running,
                    processes,
                    pool: f.sockets.len(),
                    restarts,
                    last_exit,
                    config_error: f.config_error.clone(),
                    dependencies: match (&f.deps_dir, &f.deps_error) {
                        (_, Some(_)) => Some("failed"),
                        (Some(_), None) => Some("ready"),
                        (None, None) => None,
                    },
                    refused_edit: f.refused_edit.clone(),
                }
            })
            .collect()
    }

    /// Switches to a new catalog. Workers of functions that are gone, or whose code or settings changed, are stopped
    /// (SIGTERM to their groups) and start again, as they are now, on their next request; the others keep running.
    pub fn replace_catalog(&self, catalog: Arc<Catalog>) {
        let old = self.catalog();
        let new = Arc::clone(&catalog);
        match self.catalog.write() {
            Ok(mut current) => *current = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
        let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, slot) in slots.iter() {
            let id = key.split_once('/').map(|(id, _)| id).unwrap_or(key);
            if old.function(id).is_some() && old.function(id) == new.function(id) {
                continue;
            }
            let mut st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // An edit may be the fix: a crashing function gets a fresh start at once, not after its backoff.
            st.attempt = 0;
            if matches!(st.state, State::Backoff { .. }) {
                st.state = State::Idle;
            }
            if let State::Running { pid, .. } = st.state {
                st.state = State::Idle;
                if let Some(socket) = socket_of(&old, key) {
                    remove_socket(&socket);
                }
                signal_group(pid, Signal::SIGTERM);
            }
        }
    }

    /// Stops worker `index` of a function at once (the gateway gave up on it). It starts again on the next request.
    pub fn kill(&self, id: &str, index: usize) {
        let slot = self.slot(id, index);
        let mut st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let State::Running { pid, .. } = st.state {
            st.state = State::Idle;
            if let Some(socket) = socket_of(&self.catalog(), &slot_key(id, index)) {
                remove_socket(&socket);
            }
            signal_group(pid, Signal::SIGKILL);
        }
    }

    /// Stops every worker: SIGTERM to each process group, SIGKILL to what is left after `grace`.
    pub async fn stop_all(&self, grace: Duration) {
        let pids: Vec<u32> = {
            let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slots
                .values()
                .filter_map(|slot| {
                    let mut st = slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match std::mem::replace(&mut st.state, State::Idle) {
                        State::Running { pid, .. } => Some(pid),
                        _ => None,
                    }
                })
                .collect()
        };
        for pid in &pids {
            signal_group(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while !self.alive_pids().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pid in self.alive_pids() {
            signal_group(pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.alive_pids().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where a worker finds its installed dependencies.
fn deps_env(function: &CatalogFunction) -> Vec<(&'static str, PathBuf)> {
    let Some(dir) = &function.deps_dir else { return Vec::new() };
    match function.runtime {
        Runtime::Python => vec![("PYTHONPATH", dir.join("site"))],
        Runtime::Node => vec![("NODE_PATH", dir.join("node_modules"))],
        Runtime::Php => vec![("FN_PHP_VENDOR_DIR", dir.join("vendor"))],
        _ => Vec::new(),
    }
}

/// A Go worker's scheduler threads: the pool already runs a process per core, so each gets its share of the cores
/// (at least 1). With GOMAXPROCS = every core in every process, idle Ps spin looking for work and the processes
/// fight over the same cores.
fn go_env(function: &CatalogFunction) -> Option<(&'static str, String)> {
    if function.runtime != Runtime::Go {
        return None;
    }
    let cores = std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1);
    Some(("GOMAXPROCS", (cores / function.sockets.len().max(1)).max(1).to_string()))
}

fn slot_key(id: &str, index: usize) -> String {
    format!("{id}/{index}")
}

/// The socket of the worker a slot key names, in `catalog`.
fn socket_of(catalog: &Catalog, key: &str) -> Option<PathBuf> {
    let (id, index) = key.split_once('/')?;
    catalog.function(id)?.sockets.get(index.parse::<usize>().ok()?).cloned()
}

/// A fresh private temp dir for one worker start, owned by the worker's user, mode 0700.
fn private_tmp(base: &Path, id: &str, user: Option<(u32, u32)>) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = base.join(id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("cannot chmod `{}`: {e}", dir.display()))?;
    if let Some((uid, gid)) = user {
        crate::rundir::chown(&dir, Some(uid), Some(gid)).map_err(|e| format!("cannot chown `{}`: {e}", dir.display()))?;
    }
    Ok(dir)
}

/// Exit status of a worker that stopped because a handler ran it out of descriptors or memory (the Python and Node
/// workers use it).
const EXIT_EXHAUSTED: i32 = 3;
/// A worker that recycles itself sooner than this after its start is crashing, not leaking: the backoff applies.
const RECYCLE_AFTER: Duration = Duration::from_secs(1);

/// A socket bound for a worker that has not started yet: a start that fails before the worker runs (its folder was
/// deleted, the sandbox could not be prepared) removes it, so no socket file is left with nobody listening.
struct UnclaimedSocket<'a> {
    path: &'a Path,
    armed: bool,
}

impl Drop for UnclaimedSocket<'_> {
    fn drop(&mut self) {
        if self.armed {
            remove_socket(self.path);
        }
    }
}

/// Removes a dead worker's socket file, so the gateway sees "no such file" (a quiet cold start) rather than
/// "connection refused", which nginx logs as an error on every connect.
fn remove_socket(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(socket = %path.display(), error = %e, "cannot remove a dead worker's socket"),
    }
}

/// Binds the worker's socket: mode 0600, owned by the gateway. It is bound under a temporary name and renamed into
/// place once its owner and mode are right, so the gateway never finds it at `path` still owned by us (EACCES).
fn bind_socket(path: &Path, owner: Option<u32>) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut staging = path.as_os_str().to_os_string();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    match std::fs::remove_file(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove stale socket `{}`: {e}", staging.display())),
    }
    let listener = std::os::unix::net::UnixListener::bind(&staging).map_err(|e| format!("cannot bind `{}`: {e}", staging.display()))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("cannot chmod `{}`: {e}", staging.display()))?;
    if let Some(uid) = owner {
        crate::rundir::chown(&staging, Some(uid), None).map_err(|e| format!("cannot chown `{}`: {e}", staging.display()))?;
    }
    // rename() replaces a stale socket at `path` atomically.
    std::fs::rename(&staging, path).map_err(|e| format!("cannot move the socket into place at `{}`: {e}", path.display()))?;
    Ok(listener)
}

/// Sends `{"op":"ping"}` and waits for `{"op":"pong"}`. A connection closed unanswered is tried again until the
/// deadline: a worker that checks its peer on the first message (PHP) cannot see the credentials of a message sent
/// before it was ready for them.
async fn ping(socket: &Path, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        loop {
            let mut stream = UnixStream::connect(socket).await.map_err(|e| format!("connect: {e}"))?;
            frame::write(&mut stream, &frame::object(json!({"op": "ping"}))).await.map_err(|e| e.to_string())?;
            match frame::read(&mut stream, frame::MAX_CONTROL_FRAME).await {
                Ok(reply) if reply.get("op").and_then(|v| v.as_str()) == Some("pong") => return Ok(()),
                Ok(reply) => return Err(format!("unexpected reply {}", serde_json::Value::Object(reply))),
                Err(frame::FrameError::Closed) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(frame::FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// Logs a worker's crash or failed start: a warning until it is in a crash loop, one error on entering it, and only
/// debug lines for its later retries (a crash loop must not flood the log).
fn log_failure(name: &str, attempt: u32, what: &str) {
    if attempt == backoff::CRASH_LOOP_AFTER {
        tracing::error!(function = %name, attempts = attempt, "{what}; crash loop: marked failed, still retried (at most {} s apart)", backoff::MAX_DELAY.as_secs());
    } else if backoff::in_crash_loop(attempt) {
        tracing::debug!(function = %name, attempts = attempt, "{what}");
    } else {
        tracing::warn!(function = %name, attempts = attempt, "{what}");
    }
}
