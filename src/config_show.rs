//! `fastfn config show`: the effective value of every setting and where it came from (flag, environment,
//! `fastfn.toml`, default), secrets masked, then whether `run` would accept them.

use serde_json::{json, Value};

use crate::cli::StackArgs;
use crate::config::{self, env};
use crate::config_file::{Kind, Origin, Sources, KEYS, LISTEN_KEY};

/// One row of the answer.
pub struct Shown {
    pub key: &'static str,
    pub env: &'static str,
    pub value: String,
    pub origin: Origin,
}

/// Every key's effective value for these flags and sources.
pub fn effective(args: &StackArgs, sources: &Sources) -> Vec<Shown> {
    KEYS.iter()
        .map(|key| {
            let (value, origin) = match key.path {
                LISTEN_KEY => listen(args, sources),
                "run_dir" if args.run_dir.is_some() => (args.run_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), Origin::Flag("--run-dir")),
                "hot_reload" if args.hot_reload => ("on".to_string(), Origin::Flag("--hot-reload")),
                _ => match sources.get(key.env) {
                    Some(_) if key.secret => ("<hidden>".to_string(), sources.origin(key.env)),
                    Some(raw) if key.kind == Kind::Bool => (crate::guard::parse_flag(&raw).map_or(raw, |on| if on { "on" } else { "off" }.to_string()), sources.origin(key.env)),
                    Some(raw) => (raw, sources.origin(key.env)),
                    None => ((key.default)(), Origin::Default),
                },
            };
            Shown { key: key.path, env: key.env, value, origin }
        })
        .collect()
}

fn listen(args: &StackArgs, sources: &Sources) -> (String, Origin) {
    if let Some(flag) = &args.listen {
        return (flag.clone(), Origin::Flag("--listen"));
    }
    let from_env = config::env_var(env::HOST_BIND).is_some() || config::env_var(env::HOST_PORT).is_some();
    let value = config::listen_from(None, sources).map(|a| a.to_string()).unwrap_or_else(|why| format!("invalid ({why})"));
    let origin = match (&sources.file, sources.file_listen()) {
        _ if from_env => Origin::Env("FN_HOST_BIND/FN_HOST_PORT"),
        (Some(file), Some(_)) => Origin::File(file.path.clone()),
        _ => Origin::Default,
    };
    (value, origin)
}

pub fn to_table(file: Option<&std::path::Path>, rows: &[Shown], problems: &[String]) -> String {
    let mut out = format!("settings file: {}\n", file.map_or_else(|| "(none)".to_string(), |p| p.display().to_string()));
    let key_width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(0).min(40);
    out.push_str(&format!("{:key_width$}  {:value_width$}  SOURCE\n", "KEY", "VALUE"));
    for row in rows {
        out.push_str(&format!("{:key_width$}  {:value_width$}  {}\n", row.key, row.value, row.origin));
    }
    if problems.is_empty() {
        out.push_str("valid: `fastfn run` accepts these settings\n");
    } else {
        out.push_str("invalid:\n");
        for problem in problems {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    out
}

pub fn to_json(file: Option<&std::path::Path>, rows: &[Shown], problems: &[String]) -> Value {
    let settings: Vec<Value> = rows
        .iter()
        .map(|row| {
            let source = match &row.origin {
                Origin::Default => "default",
                Origin::File(_) => "file",
                Origin::Env(_) => "env",
                Origin::Flag(_) => "flag",
            };
            json!({ "key": row.key, "env": row.env, "value": row.value, "source": source, "from": row.origin.to_string() })
        })
        .collect();
    json!({ "schema": 1, "file": file, "settings": settings, "valid": problems.is_empty(), "problems": problems })
}
