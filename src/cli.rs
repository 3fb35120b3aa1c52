//! Command-line interface: what a user can type. Parsing only; `config` turns it into settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "fastfn", version, about = "Run a folder of functions (Python, Node) behind nginx + Lua, natively, with no Docker")]
pub struct Cli {
    /// How fastfn's own log lines look: `human` for a terminal, `json` for log collectors.
    #[arg(long, value_enum, global = true, default_value = "human")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Developer loop: serve the functions folder, echo gateway and function logs to the terminal.
    Dev(StackArgs),
    /// Production service: serve the functions folder (for systemd and other service managers).
    Run(StackArgs),
    /// Show a running instance: supervisor, nginx, every function's worker. Exit 0 ready, 1 degraded, 3 not running,
    /// 4 no such instance.
    Status(StatusArgs),
    /// Stop a running instance gracefully (SIGTERM: in-flight requests finish) and wait until it has exited.
    Stop(InstanceArgs),
    /// Reload a running instance: re-discover the folder, check the new nginx config, swap it in (like SIGHUP), and
    /// report the result.
    Reload(InstanceArgs),
    /// Print the last lines of an instance's logs; --follow keeps printing new ones (across rotations).
    Logs(LogsArgs),
    /// Write a working function folder NAME (a handler and its fn.config.json) into DIR.
    Init(InitArgs),
    /// Settings: `show` prints every effective value and where it came from (flag, env, fastfn.toml, default).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check that this host can run `fastfn run --native`: nginx + Lua, interpreters, the port, the functions folder,
    /// the sandbox, the service users. Exit 0 when nothing failed (warnings allowed), 1 when a check failed.
    Doctor(DoctorArgs),
    /// The systemd unit that runs `fastfn run --native DIR` as a service: print it, or install it.
    #[command(subcommand)]
    Service(ServiceCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings for these arguments (the same ones `run` takes), secrets masked, and whether
    /// they are valid. Exit 0 valid, 78 invalid, 69 a program is missing.
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// Which command's defaults to show (`hot_reload` is on in dev).
    #[arg(long, value_parser = ["dev", "run"], default_value = "run")]
    pub mode: String,

    /// Print a JSON object (with a `schema` version) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The functions folder to check.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// The address `run` will listen on, ADDR:PORT [default: 127.0.0.1:8080; FN_HOST_BIND and FN_HOST_PORT also set it].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Print one JSON object (with a `schema` version) instead of one line per check.
    #[arg(long)]
    pub json: bool,

    /// Settings file [default: fastfn.toml in the functions folder, when there is one].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Print the systemd unit (Type=notify, hardened, for systemd 252+) for DIR on stdout.
    Unit(ServiceUnitArgs),
    /// As root: write the unit to /etc/systemd/system/NAME.service, create the worker user and the cache dir, and
    /// run `systemctl daemon-reload`. Starts nothing.
    Install(ServiceInstallArgs),
}

#[derive(Debug, Args)]
pub struct ServiceUnitArgs {
    /// The functions folder (made absolute).
    pub dir: PathBuf,

    /// The unprivileged user function workers run as (FN_USER); `install` creates it when missing.
    #[arg(long, default_value = "fastfn")]
    pub user: String,

    /// Address the service listens on, ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// The unit's name (NAME.service); also names its run dir /run/NAME and cache dir /var/cache/NAME.
    #[arg(long, default_value = "fastfn")]
    pub name: String,

    /// An environment variable for the service (repeatable), e.g. --env FN_ADMIN_TOKEN_FILE=/etc/fastfn/admin-token.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServiceInstallArgs {
    #[command(flatten)]
    pub unit: ServiceUnitArgs,

    /// Where to write NAME.service.
    #[arg(long, value_name = "PATH", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,

    /// Replace an existing unit file that differs from the one fastfn would write.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The function's name: its folder and its route (`/NAME`).
    pub name: String,

    /// The runtime: python, node, php, go or lua.
    #[arg(long, short, default_value = "python")]
    pub template: String,

    /// The functions folder to write into.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,

    /// How many of the last lines to print first.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: usize,

    /// Keep printing lines as they are written.
    #[arg(short, long)]
    pub follow: bool,

    /// Only this log: `nginx` (error log), `access`, or `functions` (all function output) [default: nginx and
    /// functions].
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,

    /// Only this function's output (its catalog name, e.g. `hello/handler.py`).
    #[arg(long = "fn", value_name = "NAME")]
    pub function: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,

    /// Print the JSON object (with a `schema` version) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Which running instance a command talks to.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// The instance's address [default: the only instance running, else FN_HOST_BIND/FN_HOST_PORT's].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// The run base the instance uses [default: FN_RUN_DIR, /run/fastfn as root, $XDG_RUNTIME_DIR/fastfn, or
    /// /tmp/fastfn-<uid>].
    #[arg(long, value_name = "PATH")]
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StackArgs {
    /// Run natively (nginx + Lua + language workers on this host). This build has only native mode.
    #[arg(long)]
    pub native: bool,

    /// The functions folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Address to listen on, ADDR:PORT [default: 127.0.0.1:8080; FN_HOST_BIND and FN_HOST_PORT also set it].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Once ready, write the readiness JSON (the same line printed on stdout) to this file; removed at exit.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// Watch the functions folder and reload on changes (always on in `dev`; FN_HOT_RELOAD=0/1 also decides).
    #[arg(long)]
    pub hot_reload: bool,

    /// Parent folder for this instance's private run state [default: FN_RUN_DIR, /run/fastfn as root,
    /// $XDG_RUNTIME_DIR/fastfn, or /tmp/fastfn-<uid>].
    #[arg(long, value_name = "PATH")]
    pub run_dir: Option<PathBuf>,

    /// Settings file [default: fastfn.toml in the functions folder, when there is one]. The environment overrides
    /// it; flags override both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
