//! Function dependencies: `requirements.txt` (pip), `package.json` (npm) and `composer.json` (Composer), installed
//! when the stack starts or reloads — never per request — into a per-manifest directory under the state dir, keyed by
//! the manifest's hash so identical manifests share one install. Installs run in parallel (up to the cores), outside
//! the sandbox, as the worker user when there is one, with a time limit. The worker then reads its deps from there
//! (Python `PYTHONPATH`, Node `NODE_PATH`, PHP `vendor/autoload.php`), and Landlock lets it read that directory only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::types::Runtime;

/// Longest install fastfn waits for.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of an installer's output a failure keeps.
const TAIL: usize = 2000;

/// A dependency manifest next to a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub runtime: Runtime,
    pub path: PathBuf,
    /// FNV-1a 64 of the manifest (and lock file), as hex: the install directory's name.
    pub hash: String,
}

/// The manifest a runtime reads in `dir`, if any.
pub fn manifest(runtime: Runtime, dir: &Path) -> Option<Manifest> {
    let (file, lock) = match runtime {
        Runtime::Python => ("requirements.txt", None),
        Runtime::Node => ("package.json", Some("package-lock.json")),
        Runtime::Php => ("composer.json", Some("composer.lock")),
        _ => return None,
    };
    let path = dir.join(file);
    let text = std::fs::read(&path).ok()?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let lock_text = lock.and_then(|l| std::fs::read(dir.join(l)).ok()).unwrap_or_default();
    for byte in runtime.as_str().bytes().chain(text).chain(lock_text) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(Manifest { runtime, path, hash: format!("{hash:016x}") })
}

/// Where a manifest's dependencies live.
pub fn install_dir(base: &Path, manifest: &Manifest) -> PathBuf {
    base.join(format!("{}-{}", manifest.runtime, manifest.hash))
}

/// Who runs installers and the tools they need.
pub struct Installer<'a> {
    pub python: Option<&'a Path>,
    pub user: Option<(u32, u32)>,
    pub base: &'a Path,
}

/// Installs one manifest (unless already installed). Returns the install directory, or the failure with the tail of
/// the installer's output.
pub fn install(installer: &Installer<'_>, manifest: &Manifest) -> Result<PathBuf, String> {
    let dir = install_dir(installer.base, manifest);
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cache = installer.base.join("cache");
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    if let Some((uid, gid)) = installer.user {
        for d in [&dir, &cache] {
            let _ = crate::rundir::chown(d, Some(uid), Some(gid));
        }
    }
    let manifest_dir = manifest.path.parent().unwrap_or(Path::new("/"));
    let mut command = match manifest.runtime {
        Runtime::Python => {
            let python = installer.python.ok_or("no Python interpreter to run pip")?;
            let mut c = Command::new(python);
            c.args(["-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--break-system-packages", "--target"])
                .arg(dir.join("site"))
                .arg("--cache-dir")
                .arg(cache.join("pip"))
                .arg("-r")
                .arg(&manifest.path);
            c
        }
        Runtime::Node => {
            let npm = which::which("npm").map_err(|_| "npm is not installed (apt-get install -y npm)".to_string())?;
            for file in ["package.json", "package-lock.json"] {
                let from = manifest_dir.join(file);
                if from.is_file() {
                    std::fs::copy(&from, dir.join(file)).map_err(|e| format!("cannot copy {file}: {e}"))?;
                }
            }
            let mut c = Command::new(npm);
            let verb = if dir.join("package-lock.json").is_file() { "ci" } else { "install" };
            c.args([verb, "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier"]).current_dir(&dir);
            c
        }
        Runtime::Php => {
            let composer = which::which("composer").map_err(|_| "composer is not installed, so composer.json cannot be installed (apt-get install -y composer)".to_string())?;
            for file in ["composer.json", "composer.lock"] {
                let from = manifest_dir.join(file);
                if from.is_file() {
                    std::fs::copy(&from, dir.join(file)).map_err(|e| format!("cannot copy {file}: {e}"))?;
                }
            }
            let mut c = Command::new(composer);
            c.args(["install", "--no-dev", "--no-interaction", "--no-progress", "--no-scripts", "--prefer-dist"]).current_dir(&dir);
            c
        }
        other => return Err(format!("{other} functions have no dependency manifest")),
    };
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("HOME", &cache)
        .env("npm_config_cache", cache.join("npm"))
        .env("COMPOSER_HOME", cache.join("composer"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Ok(lang) = std::env::var("LANG") {
        command.env("LANG", lang);
    }
    if let Some((uid, gid)) = installer.user {
        // Never as root when a service user exists.
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    let output = run_with_timeout(command, INSTALL_TIMEOUT)?;
    if !output.0 {
        let text = output.1;
        let tail = &text[text.len().saturating_sub(TAIL)..];
        return Err(format!("the installer failed:\n{}", tail.trim()));
    }
    std::fs::write(dir.join(".complete"), b"").map_err(|e| format!("cannot mark {} complete: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs a command to completion or until `timeout`; returns (success, combined output).
fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<(bool, String), String> {
    use std::io::Read;
    let mut child = command.spawn().map_err(|e| format!("cannot start the installer: {e}"))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // Drain both pipes on threads, so a chatty installer never blocks on a full pipe.
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = format!("{}{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(status) => Ok((status.success(), text)),
        None => Err(format!("the installer took longer than {} s", timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_manifests_share_a_hash_and_a_change_makes_a_new_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in ["a", "b"] {
            std::fs::create_dir(dir.path().join(f)).expect("mkdir");
            std::fs::write(dir.path().join(f).join("requirements.txt"), "six==1.16.0\n").expect("write");
        }
        let a = manifest(Runtime::Python, &dir.path().join("a")).expect("manifest");
        let b = manifest(Runtime::Python, &dir.path().join("b")).expect("manifest");
        assert_eq!(a.hash, b.hash);
        assert_eq!(install_dir(Path::new("/d"), &a), install_dir(Path::new("/d"), &b));
        std::fs::write(dir.path().join("b").join("requirements.txt"), "six==1.15.0\n").expect("write");
        assert_ne!(manifest(Runtime::Python, &dir.path().join("b")).expect("manifest").hash, a.hash);
        assert!(manifest(Runtime::Node, &dir.path().join("a")).is_none());
        assert!(manifest(Runtime::Go, &dir.path().join("a")).is_none());
    }
}
