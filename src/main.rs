//! fastfn native: runs a folder of serverless-style functions on one host, with no Docker.
//!
//! # Layout
//! - `cli`: the command line (clap); `config`: flags + environment + `fastfn.toml` → validated `Settings`.
//! - `config_file`: `fastfn.toml`, each key mapped to its `FN_*` variable, parsed strictly; where values come from.
//! - `config_show`: `fastfn config show`: effective settings with their sources, secrets masked.
//! - `binaries`: finds OpenResty or nginx + its Lua module, and real interpreter binaries.
//! - `discover`: the functions folder → functions and routes (the one implementation of routing rules).
//! - `catalog`: what discovery found, sorted into match order, written atomically for the Lua gateway.
//! - `render`: `nginx-templates/nginx.conf.tera` → `nginx.conf`, checked with `nginx -t` before use.
//! - `rundir`: the instance's private run dir (config, sockets, logs, temp paths), locked per listen address.
//! - `assets`: the Lua gateway and worker programs, embedded in the binary and extracted into the run dir.
//! - `frame`: the 4-byte big-endian length + JSON framing used on every unix socket.
//! - `guard`: control-plane guard settings (switches, admin token as a MAC, trusted networks, rate limits).
//! - `gateway`: the settings file the Lua gateway loads at start (catalog path, control socket, guard).
//! - `fnconfig`: `fn.config.json`, validated strictly (timeouts, body limit, methods, allowed hosts, handler).
//! - `sandbox`: what every function worker runs under: rlimits, privilege drop, no-new-privs, seccomp.
//! - `secrets`: `fn.env.json` values, which are secret, masked views and masks for log lines.
//! - `deps`: installs requirements.txt / package.json / composer.json once per manifest, outside requests.
//! - `gobuild`: compiles Go handlers into cached worker binaries (outside requests and the sandbox).
//! - `openapi`: the OpenAPI 3.1 document of the catalog's routes (and, on request, the control plane).
//! - `control`: the control socket the gateway uses to start cold workers and stop timed-out ones.
//! - `supervise`: starts nginx and the function workers, watches them, stops everything on a signal.
//! - `watch`: hot reload: a debounced watcher over the functions folder that re-runs discovery.
//! - `init`: `fastfn init`: writes a working function from a template.
//! - `logs`: `fastfn logs`: tails and follows an instance's log files.
//! - `doctor`: `fastfn doctor`: pre-flight checks (nginx + Lua, interpreters, port, folder, sandbox, users).
//! - `status`: `fastfn status`: finds a running instance and shows its supervisor's snapshot.
//! - `service`: `fastfn service unit|install`: the hardened systemd unit for `fastfn run --native`.
//! - `systemd`: sd_notify (READY, STATUS, RELOADING, STOPPING, WATCHDOG) for Type=notify units.
//! - `types`: vocabulary shared by all of the above (runtimes, methods, modes, process ends).
//!
//! Data flows one way: CLI → settings → discovery → catalog + nginx.conf → processes. Per request, only nginx
//! (Lua) and the function's worker are involved; the supervisor is consulted only to start a cold worker.

mod assets;
mod binaries;
mod catalog;
mod cli;
mod config;
mod config_file;
mod config_show;
mod control;
mod deps;
mod discover;
mod doctor;
mod fnconfig;
mod frame;
#[cfg(test)]
mod fuzz;
mod openapi;
mod gateway;
mod gobuild;
mod init;
mod guard;
mod render;
mod sandbox;
mod logs;
mod secrets;
mod service;
mod status;
mod rundir;
mod supervise;
mod systemd;
mod types;
mod watch;

use clap::Parser;

use cli::{Cli, Command, LogFormat};
use types::Mode;

/// Exit codes (documented in docs/cli.md).
mod exit {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    /// EX_UNAVAILABLE: a program fastfn needs is missing.
    pub const MISSING_DEPENDENCY: i32 = 69;
    /// EX_CONFIG: invalid configuration; systemd units set RestartPreventExitStatus=78.
    pub const CONFIG: i32 = 78;
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let (mode, args) = match &cli.command {
        Command::Dev(args) => (Mode::Dev, args),
        Command::Run(args) => (Mode::Run, args),
        Command::Status(args) => std::process::exit(status_command(args)),
        Command::Stop(args) => std::process::exit(stop_command(args)),
        Command::Reload(args) => std::process::exit(reload_command(args)),
        Command::Logs(args) => std::process::exit(logs_command(args)),
        Command::Init(args) => std::process::exit(init_command(args)),
        Command::Config(cli::ConfigCommand::Show(args)) => std::process::exit(config_show_command(args)),
        Command::Doctor(args) => std::process::exit(doctor::command(args)),
        Command::Service(cli::ServiceCommand::Unit(args)) => std::process::exit(finish(service::unit_command(args).map(|unit| unit.trim_end().to_string()))),
        Command::Service(cli::ServiceCommand::Install(args)) => std::process::exit(finish(service::install_command(args))),
    };
    if !args.native {
        let verb = mode.as_str();
        eprintln!("error: this build of fastfn has only native mode\nhint: run `fastfn {verb} --native {}`", args.dir.display());
        std::process::exit(exit::USAGE);
    }
    let code = match config::Settings::resolve(mode, args).and_then(run) {
        Ok(code) => code,
        Err(err) => report(&err),
    };
    std::process::exit(code);
}

fn run(settings: config::Settings) -> anyhow::Result<i32> {
    // One thread: it forks every child, so PDEATHSIG only fires when the supervisor itself exits.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(supervise::run(settings))
}

/// The run dir of the instance a command names (`--listen`, FN_HOST_BIND/FN_HOST_PORT, or the only one), or why not.
fn locate_instance(args: &cli::InstanceArgs) -> Result<std::path::PathBuf, (i32, String)> {
    let (bind, port) = (config::env_var(config::env::HOST_BIND), config::env_var(config::env::HOST_PORT));
    let listen = if args.listen.is_none() && bind.is_none() && port.is_none() {
        None
    } else {
        Some(config::parse_listen(args.listen.as_deref(), bind.as_deref(), port.as_deref()).map_err(|why| (exit::USAGE, why))?)
    };
    let base = args.run_dir.clone().or_else(|| config::env_var(config::env::RUN_DIR).map(std::path::PathBuf::from)).unwrap_or_else(config::default_run_base);
    status::locate(&base, listen).map_err(|why| (status::code::NO_SUCH_INSTANCE, why))
}

fn client_runtime() -> Result<tokio::runtime::Runtime, (i32, String)> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| (exit::FAILURE, e.to_string()))
}

/// `fastfn status`: prints what it found and returns the LSB exit code.
fn status_command(args: &cli::StatusArgs) -> i32 {
    let found = match locate_instance(&args.instance) {
        Err((code, why)) if code == exit::USAGE => {
            eprintln!("error: {why}");
            return code;
        }
        Err((_, why)) => status::Found::NoSuchInstance(why),
        Ok(dir) => match client_runtime() {
            Ok(runtime) => runtime.block_on(status::ask(&dir)),
            Err((code, why)) => {
                eprintln!("error: {why}");
                return code;
            }
        },
    };
    if args.json {
        println!("{}", status::to_json(&found));
    } else {
        print!("{}", status::to_table(&found, status::colour_wanted()));
    }
    status::exit_code(&found)
}

/// `fastfn stop`: SIGTERM to the supervisor, then waits for it to exit (it drains in-flight requests first).
fn stop_command(args: &cli::InstanceArgs) -> i32 {
    let result = (|| {
        let dir = locate_instance(args)?;
        let runtime = client_runtime()?;
        let pid = match runtime.block_on(status::ask(&dir)) {
            status::Found::Running(snapshot) => snapshot["pid"].as_u64().and_then(|p| i32::try_from(p).ok()).ok_or((exit::FAILURE, "the supervisor did not say its pid".to_string()))?,
            _ => return Err((status::code::NOT_RUNNING, format!("not running ({})", dir.display()))),
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).map_err(|e| (exit::FAILURE, format!("cannot signal the supervisor (pid {pid}): {e}")))?;
        // Its own grace (FN_SHUTDOWN_GRACE_MS, 10 s by default) plus the workers' second and some slack. It has
        // exited when its run-dir lock is free (a pid check would see an unreaped zombie as alive).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while rundir::is_locked(&dir) {
            if std::time::Instant::now() > deadline {
                return Err((exit::FAILURE, format!("the supervisor (pid {pid}) is still running after 30 s")));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(format!("stopped (pid {pid})"))
    })();
    finish(result)
}

/// `fastfn reload`: the same reload as SIGHUP, through the control socket, so the result can be reported.
fn reload_command(args: &cli::InstanceArgs) -> i32 {
    let result = (|| {
        let dir = locate_instance(args)?;
        let runtime = client_runtime()?;
        let reply = runtime.block_on(status::call(&dir, "reload", std::time::Duration::from_secs(330))).map_err(|why| (status::code::NOT_RUNNING, why))?;
        if reply.get("ok") != Some(&serde_json::Value::Bool(true)) {
            let why = reply.get("error").and_then(serde_json::Value::as_str).unwrap_or("unknown error").to_string();
            return Err((exit::FAILURE, format!("reload failed; the last good state keeps serving: {why}")));
        }
        let summary: serde_json::Value = reply.get("body").and_then(serde_json::Value::as_str).and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
        Ok(format!("reloaded: {} function(s), {} route(s)", summary["functions"], summary["routes"]))
    })();
    finish(result)
}

/// `fastfn logs`: reads the instance's log files (running or not).
fn logs_command(args: &cli::LogsArgs) -> i32 {
    let sources = match logs::Source::select(args.process.as_deref(), args.function.as_deref()) {
        Ok(sources) => sources,
        Err(why) => {
            eprintln!("error: {why}");
            return exit::USAGE;
        }
    };
    match locate_instance(&args.instance) {
        Ok(dir) => logs::show(&dir, &sources, args.lines, args.follow),
        Err((code, why)) => {
            eprintln!("error: {why}");
            code
        }
    }
}

/// `fastfn init`: writes a function from a template.
fn init_command(args: &cli::InitArgs) -> i32 {
    let Some(runtime) = types::Runtime::from_name(&args.template) else {
        eprintln!("error: --template must be python, node, php, go or lua, not `{}`", args.template);
        return exit::USAGE;
    };
    let result = init::create(&args.dir, &args.name, runtime).map(|files| {
        let listed: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        format!("created {}
serve it: fastfn dev --native {}   then: curl localhost:8080/{}?name=you", listed.join(", "), args.dir.display(), args.name)
    });
    finish(result.map_err(|why| (exit::FAILURE, why)))
}

/// `fastfn config show`: every setting's effective value and source, then whether `run` would accept them.
fn config_show_command(args: &cli::ConfigShowArgs) -> i32 {
    let mode = if args.mode == "dev" { Mode::Dev } else { Mode::Run };
    let (sources, mut problems, mut code) = match config::load_sources(&args.stack) {
        Ok(sources) => (sources, Vec::new(), 0),
        Err(problems) => (config_file::Sources::default(), problems, exit::CONFIG),
    };
    if code == 0 {
        if let Err(err) = config::Settings::resolve_with(mode, &args.stack, &sources) {
            (problems, code) = if let Some(config::ConfigError::Invalid(list)) = err.downcast_ref::<config::ConfigError>() {
                (list.clone(), exit::CONFIG)
            } else if let Some(e) = err.downcast_ref::<binaries::BinaryError>() {
                (vec![format!("{e} (hint: {})", e.hint())], exit::MISSING_DEPENDENCY)
            } else {
                (vec![format!("{err:#}")], exit::FAILURE)
            };
        }
    }
    let rows = config_show::effective(&args.stack, &sources);
    let file = sources.file.as_ref().map(|f| f.path.as_path());
    if args.json {
        println!("{}", config_show::to_json(file, &rows, &problems));
    } else {
        print!("{}", config_show::to_table(file, &rows, &problems));
    }
    code
}

/// Prints a command's outcome; returns its exit code.
fn finish(result: Result<String, (i32, String)>) -> i32 {
    match result {
        Ok(message) => {
            println!("{message}");
            0
        }
        Err((code, why)) => {
            eprintln!("error: {why}");
            code
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FN_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal, and never when NO_COLOR is set (no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.without_time().init(),
    }
}

/// The one place errors are rendered for humans: `error:` line, an optional `hint:`, then the causes.
fn report(err: &anyhow::Error) -> i32 {
    let (code, hint) = if let Some(e) = err.downcast_ref::<binaries::BinaryError>() {
        (exit::MISSING_DEPENDENCY, Some(e.hint()))
    } else if err.downcast_ref::<config::ConfigError>().is_some() {
        (exit::CONFIG, None)
    } else if let Some(e) = err.downcast_ref::<discover::DiscoverError>() {
        (exit::CONFIG, matches!(e, discover::DiscoverError::Missing(_)).then(|| "pass the functions folder: `fastfn dev --native path/to/functions`".to_string()))
    } else if let Some(rundir::RunDirError::Busy { .. }) = err.downcast_ref::<rundir::RunDirError>() {
        (exit::FAILURE, Some("stop the other instance, or pick another address with --listen".to_string()))
    } else {
        (exit::FAILURE, None)
    };
    eprintln!("error: {err}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    for cause in err.chain().skip(1) {
        eprintln!("caused by: {cause}");
    }
    code
}
