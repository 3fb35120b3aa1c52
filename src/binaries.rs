//! Finding the programs the stack runs: OpenResty or stock nginx with its Lua module, and real interpreter binaries
//! (DESIGN decision 1). Every failure names what is missing and the apt command that fixes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::types::Runtime;

/// Packages that provide stock nginx with the Lua module on Debian/Ubuntu.
pub const NGINX_APT: &str = "apt-get install -y nginx libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-cjson";

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("FN_OPENRESTY_BIN is `{}`, which is not an executable file", .0.display())]
    OverrideMissing(PathBuf),
    #[error("neither `openresty` nor `nginx` was found on PATH")]
    NoNginx,
    #[error("`{}` has no Lua module: {detail}", binary.display())]
    NoLuaModule { binary: PathBuf, detail: String },
    #[error("cannot run `{} -V`: {source}", binary.display())]
    Probe { binary: PathBuf, source: std::io::Error },
    #[error("no usable {runtime} interpreter: {detail}")]
    NoInterpreter { runtime: Runtime, detail: String },
}

impl BinaryError {
    /// The command or setting that fixes it, for the hint line.
    pub fn hint(&self) -> String {
        match self {
            BinaryError::OverrideMissing(_) => format!("unset FN_OPENRESTY_BIN to use the nginx on PATH, or install it: {NGINX_APT}"),
            BinaryError::NoNginx | BinaryError::NoLuaModule { .. } | BinaryError::Probe { .. } => format!("install it: {NGINX_APT}"),
            BinaryError::NoInterpreter { runtime: Runtime::Node, .. } => "install Node.js (apt-get install -y nodejs) or set FN_NODE_BIN".to_string(),
            BinaryError::NoInterpreter { runtime, .. } => {
                format!("install it (apt-get install -y {}) or set FN_{}_BIN", apt_package(*runtime), runtime.as_str().to_ascii_uppercase())
            }
        }
    }
}

fn apt_package(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Python => "python3",
        Runtime::Node => "nodejs",
        Runtime::Php => "php-cli",
        Runtime::Go => "golang-go",
        Runtime::Lua | Runtime::Rust => "",
    }
}

/// The gateway binary and what the config must load for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nginx {
    pub binary: PathBuf,
    pub flavor: NginxFlavor,
    /// `load_module` paths, in order (ndk before lua); empty for OpenResty, which has Lua built in.
    pub modules: Vec<PathBuf>,
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxFlavor {
    OpenResty,
    StockWithLuaModule,
}

/// Finds the gateway: `FN_OPENRESTY_BIN`, else `openresty`, else stock `nginx` plus its Lua module.
pub fn find_nginx(override_bin: Option<&str>) -> Result<Nginx, BinaryError> {
    let binary = match override_bin.filter(|s| !s.is_empty()) {
        Some(given) => {
            let resolved = which::which(given).map_err(|_| BinaryError::OverrideMissing(PathBuf::from(given)))?;
            if !is_executable(&resolved) {
                return Err(BinaryError::OverrideMissing(resolved));
            }
            resolved
        }
        None => which::which("openresty").or_else(|_| which::which("nginx")).map_err(|_| BinaryError::NoNginx)?,
    };
    let output = Command::new(&binary).arg("-V").output().map_err(|source| BinaryError::Probe { binary: binary.clone(), source })?;
    // nginx prints -V to stderr.
    let text = format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout));
    inspect_nginx(binary, &text)
}

/// Decides flavor and modules from `nginx -V` output (pure, for tests).
pub fn inspect_nginx(binary: PathBuf, version_output: &str) -> Result<Nginx, BinaryError> {
    let version = version_output
        .lines()
        .find_map(|l| l.strip_prefix("nginx version: "))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    if version.contains("openresty") || version_output.contains("ngx_lua") && version_output.contains("--add-module") {
        return Ok(Nginx { binary, flavor: NginxFlavor::OpenResty, modules: Vec::new(), version });
    }
    let modules_path = version_output
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("--modules-path="))
        .map(PathBuf::from)
        .or_else(|| {
            version_output.split_whitespace().find_map(|arg| arg.strip_prefix("--prefix=")).map(|p| Path::new(p).join("modules"))
        })
        .ok_or_else(|| BinaryError::NoLuaModule { binary: binary.clone(), detail: "`nginx -V` names no modules path".into() })?;
    let modules: Vec<PathBuf> =
        ["ndk_http_module.so", "ngx_http_lua_module.so"].iter().map(|m| modules_path.join(m)).collect();
    if let Some(missing) = modules.iter().find(|m| !m.is_file()) {
        return Err(BinaryError::NoLuaModule { binary, detail: format!("`{}` is missing", missing.display()) });
    }
    Ok(Nginx { binary, flavor: NginxFlavor::StockWithLuaModule, modules, version })
}

/// Resolves a runtime's interpreter to the real binary (not a pyenv/nvm shim), asking the interpreter itself where
/// it lives. `must_be_reachable_by_others` skips candidates under folders other users cannot enter (a pyenv under
/// `/root`), since workers will run as an unprivileged user.
pub fn find_interpreter(runtime: Runtime, override_bin: Option<&str>, must_be_reachable_by_others: bool) -> Result<PathBuf, BinaryError> {
    let (names, probe): (&[&str], &[&str]) = match runtime {
        Runtime::Python => (&["python3"], &["-c", "import sys; sys.stdout.write(sys.executable)"]),
        Runtime::Node => (&["node", "nodejs"], &["-e", "process.stdout.write(process.execPath)"]),
        Runtime::Php => (&["php"], &["-r", "echo PHP_BINARY;"]),
        // Go handlers are compiled by the supervisor: this is the toolchain, asked for its own path.
        Runtime::Go => (&["go"], &["env", "GOROOT"]),
        other => {
            return Err(BinaryError::NoInterpreter { runtime: other, detail: "this build has no worker for it yet".into() });
        }
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(given) = override_bin.filter(|s| !s.is_empty()) {
        candidates.push(which::which(given).map_err(|_| BinaryError::NoInterpreter {
            runtime,
            detail: format!("FN_{}_BIN is `{given}`, which is not an executable", runtime.as_str().to_ascii_uppercase()),
        })?);
    } else {
        for name in names {
            if let Ok(all) = which::which_all(name) {
                candidates.extend(all);
            }
        }
    }
    let mut rejected = Vec::new();
    for candidate in candidates {
        let real = match Command::new(&candidate).args(probe).output() {
            // `go env GOROOT` names the toolchain's root; its bin/go is the real binary behind any symlink.
            Ok(out) if out.status.success() && !out.stdout.is_empty() && runtime == Runtime::Go => {
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin").join("go")
            }
            Ok(out) if out.status.success() && !out.stdout.is_empty() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
            Ok(_) | Err(_) => {
                rejected.push(format!("`{}` did not run", candidate.display()));
                continue;
            }
        };
        let real = real.canonicalize().unwrap_or(real);
        if must_be_reachable_by_others && !reachable_by_others(&real) {
            rejected.push(format!("`{}` is in a folder other users cannot enter", real.display()));
            continue;
        }
        return Ok(real);
    }
    let detail = if rejected.is_empty() { format!("`{}` is not on PATH", names[0]) } else { rejected.join("; ") };
    Err(BinaryError::NoInterpreter { runtime, detail })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Every ancestor folder is world-searchable and the file world-executable.
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let file_ok = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false);
    file_ok && path.ancestors().skip(1).all(|dir| std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openresty_needs_no_modules() {
        let found = inspect_nginx("/x/openresty".into(), "nginx version: openresty/1.25.3.1\nbuilt with ...").expect("openresty");
        assert_eq!(found.flavor, NginxFlavor::OpenResty);
        assert!(found.modules.is_empty());
    }

    #[test]
    fn stock_nginx_without_modules_is_refused_with_the_missing_file() {
        let err = inspect_nginx("/x/nginx".into(), "nginx version: nginx/1.22.1\nconfigure arguments: --modules-path=/nonexistent/modules")
            .expect_err("no modules there");
        assert!(err.to_string().contains("/nonexistent/modules/ndk_http_module.so"), "{err}");
        assert!(err.hint().contains("libnginx-mod-http-lua"));
    }

    #[test]
    fn override_that_does_not_exist_is_refused() {
        let err = find_nginx(Some("/nonexistent/openresty")).expect_err("missing override");
        assert!(matches!(err, BinaryError::OverrideMissing(_)));
        assert!(err.to_string().contains("FN_OPENRESTY_BIN"));
    }
}
