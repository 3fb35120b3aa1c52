//! fastfn native: runs a folder of serverless-style functions on one host, with no Docker.
//!
//! # Layout
//! - `cli`: the command line (clap); `config`: flags + environment → validated `Settings`.
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
//! - `status`: `fastfn status`: finds a running instance and shows its supervisor's snapshot.
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
mod control;
mod deps;
mod discover;
mod fnconfig;
mod frame;
mod openapi;
mod gateway;
mod gobuild;
mod guard;
mod render;
mod sandbox;
mod secrets;
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

/// `fastfn status`: prints what it found and returns the LSB exit code.
fn status_command(args: &cli::StatusArgs) -> i32 {
    let env_listen = || {
        if args.listen.is_none() && config::env_var(config::env::HOST_BIND).is_none() && config::env_var(config::env::HOST_PORT).is_none() {
            return Ok(None);
        }
        config::parse_listen(args.listen.as_deref(), config::env_var(config::env::HOST_BIND).as_deref(), config::env_var(config::env::HOST_PORT).as_deref()).map(Some)
    };
    let listen = match env_listen() {
        Ok(listen) => listen,
        Err(why) => {
            eprintln!("error: {why}");
            return exit::USAGE;
        }
    };
    let base = args.run_dir.clone().or_else(|| config::env_var(config::env::RUN_DIR).map(std::path::PathBuf::from)).unwrap_or_else(config::default_run_base);
    let found = match status::locate(&base, listen) {
        Err(why) => status::Found::NoSuchInstance(why),
        Ok(dir) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(status::ask(&dir)),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILURE;
            }
        },
    };
    if args.json {
        println!("{}", status::to_json(&found));
    } else {
        print!("{}", status::to_table(&found));
    }
    status::exit_code(&found)
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
