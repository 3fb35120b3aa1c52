//! Rendering `nginx.conf` from the tera template, checking it with `nginx -t`, and only then installing it
//! (render to a temp file in the config dir, test that file, rename it over the live one).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::assets::NGINX_TEMPLATE;
use crate::binaries::Nginx;

/// Everything the template needs; nothing else reaches it.
#[derive(Debug, Clone, Serialize)]
pub struct NginxContext {
    pub fastfn_version: String,
    pub load_modules: Vec<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub worker_processes: String,
    pub run_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub tmp_dir: PathBuf,
    pub lua_dir: PathBuf,
    pub error_log_level: String,
    pub echo_logs: bool,
    pub listen: String,
    pub client_max_body_size: u64,
    pub client_body_buffer_size: u64,
    pub settings_path: PathBuf,
    /// `FN_BENCH_CEILING`: an inline-Lua endpoint the benchmark compares function calls against.
    pub bench_ceiling: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot render nginx-templates/nginx.conf.tera: {0}")]
    Template(String),
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot run `{}`: {source}", binary.display())]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("nginx rejected the rendered config `{}`:\n{output}", path.display())]
    Rejected { path: PathBuf, output: String },
}

pub fn render(ctx: &NginxContext) -> Result<String, RenderError> {
    let context = tera::Context::from_serialize(ctx).map_err(|e| RenderError::Template(error_chain(&e)))?;
    tera::Tera::one_off(NGINX_TEMPLATE, &context, false).map_err(|e| RenderError::Template(error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Renders, tests with `nginx -t` and installs the config at `target`. The live file is never touched when the
/// test fails.
pub fn install(nginx: &Nginx, ctx: &NginxContext, target: &Path, error_log: &Path) -> Result<(), RenderError> {
    let text = render(ctx)?;
    let candidate = target.with_extension("conf.new");
    std::fs::write(&candidate, text).map_err(|source| RenderError::Write { path: candidate.clone(), source })?;
    check(nginx, &candidate, &ctx.run_dir, error_log)?;
    std::fs::rename(&candidate, target).map_err(|source| RenderError::Write { path: target.to_path_buf(), source })
}

/// The arguments that point nginx at an instance: prefix, error log (before the config is read) and config.
pub fn nginx_args<'a>(prefix: &'a Path, error_log: &'a Path, conf: &'a Path) -> [&'a std::ffi::OsStr; 6] {
    ["-p".as_ref(), prefix.as_os_str(), "-e".as_ref(), error_log.as_os_str(), "-c".as_ref(), conf.as_os_str()]
}

/// Runs `nginx -t -q` on a config file.
pub fn check(nginx: &Nginx, conf: &Path, prefix: &Path, error_log: &Path) -> Result<(), RenderError> {
    let output = Command::new(&nginx.binary)
        .args(["-t", "-q"])
        .args(nginx_args(prefix, error_log, conf))
        .output()
        .map_err(|source| RenderError::Spawn { binary: nginx.binary.clone(), source })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout));
    Err(RenderError::Rejected { path: conf.to_path_buf(), output: text.trim().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> NginxContext {
        NginxContext {
            fastfn_version: "0.0.0".into(),
            load_modules: vec!["/usr/lib/nginx/modules/ndk_http_module.so".into(), "/usr/lib/nginx/modules/ngx_http_lua_module.so".into()],
            user: None,
            group: None,
            worker_processes: "2".into(),
            run_dir: "/run/fastfn/127.0.0.1-8080".into(),
            logs_dir: "/run/fastfn/127.0.0.1-8080/logs".into(),
            tmp_dir: "/run/fastfn/127.0.0.1-8080/tmp".into(),
            lua_dir: "/run/fastfn/127.0.0.1-8080/lib/lua".into(),
            error_log_level: "notice".into(),
            echo_logs: true,
            listen: "127.0.0.1:8080".into(),
            client_max_body_size: 1_048_576,
            client_body_buffer_size: 1_048_576,
            settings_path: "/run/fastfn/127.0.0.1-8080/conf/gateway.json".into(),
            bench_ceiling: false,
        }
    }

    #[test]
    fn renders_modules_in_order_and_paths_from_the_run_dir() {
        let text = render(&sample()).expect("renders");
        let ndk = text.find("load_module /usr/lib/nginx/modules/ndk_http_module.so;").expect("ndk line");
        let lua = text.find("load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;").expect("lua line");
        assert!(ndk < lua, "ndk must load before lua");
        assert!(text.contains("listen 127.0.0.1:8080;"));
        assert!(text.contains("pid /run/fastfn/127.0.0.1-8080/nginx.pid;"));
        assert!(text.contains(r#"lua_package_path "/run/fastfn/127.0.0.1-8080/lib/lua/?.lua;;";"#));
        assert!(text.contains("access_log /dev/stdout fastfn if=$fastfn_log_request;"));
        assert!(!text.contains("\nuser "));
        assert!(!text.contains("{{") && !text.contains("{%"), "unrendered tags left");
    }

    #[test]
    fn openresty_and_run_mode_render_without_modules_or_echo() {
        let mut ctx = sample();
        ctx.load_modules.clear();
        ctx.echo_logs = false;
        ctx.user = Some("www-data".into());
        ctx.group = Some("www-data".into());
        let text = render(&ctx).expect("renders");
        assert!(!text.contains("load_module"));
        assert!(!text.contains("/dev/stdout"));
        assert!(!text.contains("error_log stderr"));
        assert!(text.contains("\nuser www-data www-data;"));
    }

    /// Snapshot of the whole rendered file, so any template change is a visible diff in review.
    #[test]
    fn snapshot() {
        let text = render(&sample()).expect("renders");
        let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/nginx.conf");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(snapshot.parent().expect("parent")).expect("mkdir");
            std::fs::write(&snapshot, &text).expect("write snapshot");
        }
        let expected = std::fs::read_to_string(&snapshot).expect("snapshot exists: run with UPDATE_SNAPSHOTS=1 once");
        assert_eq!(text, expected, "rendered nginx.conf changed: review it, then UPDATE_SNAPSHOTS=1 cargo test");
    }
}
