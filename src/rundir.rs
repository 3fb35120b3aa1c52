//! The private run dir of one instance (DESIGN decision 5): rendered config, catalog, sockets, logs, nginx temp
//! paths and the extracted gateway and worker programs. Never inside the functions folder. One instance per listen
//! address, guarded by a lock file, so several instances side by side cannot collide.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::ServiceUser;

/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot create `{}`: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("`{}` belongs to uid {owner}, not to uid {me}, or others can write to it: refusing to keep run state there", path.display())]
    Unsafe { path: PathBuf, owner: u32, me: u32 },
    #[error("another fastfn already runs for {listen} (its run dir is `{}`)", path.display())]
    Busy { listen: SocketAddr, path: PathBuf },
    #[error("socket paths under `{}` would be {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of unix sockets", path.display())]
    PathTooLong { path: PathBuf, len: usize },
    #[error("nginx workers run as `{user}` and function workers as another user, but `{}` (mode {mode:o}) does not let them through to the run dir: pick a --run-dir (FN_RUN_DIR) whose parents every user can traverse, like the default /run/fastfn", path.display())]
    Untraversable { path: PathBuf, user: String, mode: u32 },
    #[error("run dir `{}` contains characters nginx cannot take in a config path (quotes, `;`, `{{`, `}}`, `$`, `#`, whitespace or `\\`)", .0.display())]
    UnsafeChars(PathBuf),
}

#[derive(Debug)]
pub struct RunDir {
    pub root: PathBuf,
    pub conf: PathBuf,
    pub sockets: PathBuf,
    pub logs: PathBuf,
    pub tmp: PathBuf,
    pub lib: PathBuf,
    /// Parent of the workers' private temp dirs (searchable by them, listable by nobody else).
    pub worker_tmp: PathBuf,
    /// Compiled Go workers (readable by the worker user).
    pub go_builds: PathBuf,
    pub control_socket: PathBuf,
    /// Held open for the life of the process: the flock on it is what makes the run dir ours.
    _lock: File,
}

impl RunDir {
    pub fn catalog_path(&self) -> PathBuf {
        self.conf.join("catalog.json")
    }
    pub fn secrets_path(&self) -> PathBuf {
        self.conf.join("secrets.json")
    }
    pub fn gateway_settings(&self) -> PathBuf {
        self.conf.join("gateway.json")
    }
    pub fn nginx_conf(&self) -> PathBuf {
        self.conf.join("nginx.conf")
    }
    pub fn error_log(&self) -> PathBuf {
        self.logs.join("error.log")
    }
    pub fn lua_dir(&self) -> PathBuf {
        self.lib.join("lua")
    }
    pub fn runtimes_dir(&self) -> PathBuf {
        self.lib.join("runtimes")
    }

    /// Creates (or takes over a stale) run dir for the instance listening on `listen`.
    pub fn create(base: &Path, listen: SocketAddr, gateway: Option<&ServiceUser>) -> Result<RunDir, RunDirError> {
        let me = nix::unistd::Uid::effective().as_raw();
        make_dir(base, 0o711)?;
        check_owned(base, me)?;
        if let Some(gateway) = gateway {
            check_traversable(base, gateway)?;
        }
        let root = base.join(instance_name(listen));
        if root.to_string_lossy().chars().any(|c| c.is_whitespace() || "\"';{}$#\\".contains(c)) {
            return Err(RunDirError::UnsafeChars(root));
        }
        // Socket names are `<16 hex>-<worker>.sock`.
        let longest = root.join("sock").join("0123456789abcdef-63.sock").as_os_str().len();
        if longest > MAX_SOCKET_PATH {
            return Err(RunDirError::PathTooLong { path: root, len: longest });
        }
        make_dir(&root, 0o711)?;
        check_owned(&root, me)?;
        let lock = take_lock(&root, listen)?;

        // Whatever a previous instance left is stale now that we hold the lock.
        for stale in ["conf", "sock", "tmp", "lib", "wtmp", "gobuild", "ctl.sock", "ready.json"] {
            let p = root.join(stale);
            let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }

        let dir = RunDir {
            conf: root.join("conf"),
            sockets: root.join("sock"),
            logs: root.join("logs"),
            tmp: root.join("tmp"),
            lib: root.join("lib"),
            worker_tmp: root.join("wtmp"),
            go_builds: root.join("gobuild"),
            control_socket: root.join("ctl.sock"),
            root,
            _lock: lock,
        };
        // The gateway (nginx workers, maybe another user) must read conf and reach the sockets; nobody else.
        let shared_mode = if gateway.is_some() { 0o750 } else { 0o700 };
        // Logs: the gateway may only pass through, to reopen its own error and access logs after a rotation (the
        // master hands those files to it); it cannot list the dir or read the supervisor's 0600 logs.
        let logs_mode = if gateway.is_some() { 0o710 } else { 0o700 };
        for (path, mode, group_shared) in [
            (&dir.conf, shared_mode, true),
            (&dir.sockets, shared_mode, true),
            (&dir.tmp, shared_mode, true),
            (&dir.logs, logs_mode, true),
            (&dir.lib, 0o755, false),
            (&dir.worker_tmp, 0o711, false),
            (&dir.go_builds, 0o711, false),
        ] {
            make_dir(path, mode)?;
            if let Some(user) = gateway {
                if group_shared {
                    chown(path, None, Some(user.gid)).map_err(|source| RunDirError::Create { path: path.clone(), source })?;
                }
            }
        }
        Ok(dir)
    }
}

/// As root, nginx's workers (the gateway user) and the function workers (another user) both read the run dir's
/// lib/: every parent of the run base must let others through (x). Else nginx fails later with an obscure "module
/// not found".
fn check_traversable(base: &Path, gateway: &ServiceUser) -> Result<(), RunDirError> {
    for dir in base.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(dir) else { continue };
        let mode = meta.mode() & 0o7777;
        if mode & 0o001 == 0 {
            return Err(RunDirError::Untraversable { path: dir.to_path_buf(), user: gateway.name.clone(), mode });
        }
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<(), RunDirError> {
    fs::DirBuilder::new().recursive(true).mode(mode).create(path).map_err(|source| RunDirError::Create { path: path.to_path_buf(), source })?;
    // The umask may have narrowed it, and an existing folder keeps its old mode.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| RunDirError::Create { path: path.to_path_buf(), source })
}

fn check_owned(path: &Path, me: u32) -> Result<(), RunDirError> {
    let meta = fs::symlink_metadata(path).map_err(|source| RunDirError::Create { path: path.to_path_buf(), source })?;
    if meta.uid() != me || meta.mode() & 0o022 != 0 || !meta.is_dir() {
        return Err(RunDirError::Unsafe { path: path.to_path_buf(), owner: meta.uid(), me });
    }
    Ok(())
}

fn take_lock(root: &Path, listen: SocketAddr) -> Result<File, RunDirError> {
    let path = root.join("supervisor.lock");
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|source| RunDirError::Create { path: path.clone(), source })?;
    // SAFETY: flock on a file descriptor we own; it has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(RunDirError::Busy { listen, path: root.to_path_buf() });
    }
    file.set_len(0).ok();
    fs::write(&path, format!("{}\n", std::process::id())).ok();
    Ok(file)
}

/// Changes owner and/or group of a path.
pub fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, uid, gid)
}

/// Whether an instance still holds the lock of the run dir `root` (the lock goes with its process).
pub fn is_locked(root: &Path) -> bool {
    let Ok(file) = fs::File::open(root.join("supervisor.lock")) else { return false };
    // SAFETY: flock on a descriptor we own; it has no memory-safety preconditions. The probe's lock is released
    // when `file` closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

/// The name of the run dir of the instance listening on `listen` (under the run base).
pub fn instance_name(listen: SocketAddr) -> String {
    match listen {
        SocketAddr::V4(a) => format!("{}-{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("{}-{}", a.ip().to_string().replace(':', "_"), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_others_cannot_traverse_is_named() {
        let top = tempfile::tempdir().expect("temp dir");
        let closed = top.path().join("closed");
        fs::create_dir(&closed).expect("mkdir");
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).expect("chmod");
        let gateway = ServiceUser { name: "www-data".into(), group: "www-data".into(), uid: 33, gid: 33 };
        match check_traversable(&closed.join("run"), &gateway) {
            Err(RunDirError::Untraversable { path, mode, .. }) => assert_eq!((path, mode), (closed.clone(), 0o700)),
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o711)).expect("chmod");
        assert!(check_traversable(&closed.join("run"), &gateway).is_ok());
    }

    #[test]
    fn creates_layout_and_refuses_a_second_instance_on_the_same_address() {
        let base = tempfile::tempdir().expect("temp dir");
        let listen: SocketAddr = "127.0.0.1:18080".parse().expect("addr");
        let first = RunDir::create(base.path(), listen, None).expect("first instance");
        for d in [&first.conf, &first.sockets, &first.logs, &first.tmp, &first.lib] {
            assert!(d.is_dir(), "{}", d.display());
        }
        assert_eq!(fs::metadata(&first.sockets).expect("meta").mode() & 0o777, 0o700);
        assert!(matches!(RunDir::create(base.path(), listen, None), Err(RunDirError::Busy { .. })));
        let other = RunDir::create(base.path(), "127.0.0.1:18081".parse().expect("addr"), None).expect("other port");
        assert_ne!(other.root, first.root);
        drop(first);
        RunDir::create(base.path(), listen, None).expect("lock released with the first instance");
    }

    #[test]
    fn refuses_paths_too_long_for_sockets() {
        let base = tempfile::tempdir().expect("temp dir");
        let long = base.path().join("x".repeat(90));
        let err = RunDir::create(&long, "127.0.0.1:1".parse().expect("addr"), None).expect_err("too long");
        assert!(matches!(err, RunDirError::PathTooLong { .. }), "{err}");
    }

    #[test]
    fn refuses_a_world_writable_base() {
        let base = tempfile::tempdir().expect("temp dir");
        let shared = base.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        // make_dir resets the mode, so simulate another owner's folder by making the check see group-write.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).expect("chmod");
        let meta = fs::metadata(&shared).expect("meta");
        assert!(check_owned(&shared, meta.uid()).is_err());
    }
}
