//! Starting and stopping child processes the supervisor owns. Every child leads its own process group (so a signal
//! reaches its whole tree), gets SIGKILL if the supervisor dies (PDEATHSIG, set after any credential change), and
//! runs its program directly, never through a shell.

use std::os::fd::RawFd;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Raw, async-signal-safe steps run in the child between fork and exec. Values are prepared in the parent.
#[derive(Clone)]
pub struct ChildSetup {
    /// The supervisor's pid, to detect that it died before PDEATHSIG was armed.
    pub parent: libc::pid_t,
    /// A listening socket to hand over as fd 3.
    pub listen_fd: Option<RawFd>,
    /// A function worker's sandbox (limits, no-new-privs, seccomp); `None` for nginx, whose master must stay root.
    pub sandbox: Option<std::sync::Arc<crate::sandbox::PreparedSandbox>>,
    /// The worker's Landlock ruleset (kept open here until the child has applied it).
    pub landlock: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

/// The fd a worker finds its listening socket on (`FN_WORKER_LISTEN_FD`).
pub const WORKER_LISTEN_FD: RawFd = 3;

impl ChildSetup {
    pub fn new(listen_fd: Option<RawFd>) -> ChildSetup {
        ChildSetup { parent: std::process::id() as libc::pid_t, listen_fd, sandbox: None, landlock: None }
    }

    pub fn sandboxed(
        listen_fd: RawFd,
        sandbox: std::sync::Arc<crate::sandbox::PreparedSandbox>,
        landlock: Option<std::os::fd::OwnedFd>,
    ) -> ChildSetup {
        ChildSetup {
            parent: std::process::id() as libc::pid_t,
            listen_fd: Some(listen_fd),
            sandbox: Some(sandbox),
            landlock: landlock.map(std::sync::Arc::new),
        }
    }

    /// Installs the steps on `command`. The child leads its own process group (a sandboxed one its own session).
    pub fn apply(self, command: &mut tokio::process::Command) {
        if self.sandbox.is_none() {
            command.process_group(0);
        }
        command.kill_on_drop(false);
        // SAFETY: the closure only makes raw syscalls (dup2, fcntl, prctl, getppid) on plain integers captured by
        // value; it allocates nothing, takes no lock and logs nothing, so it is safe between fork and exec in a
        // multi-threaded parent.
        unsafe {
            command.pre_exec(move || self.run_in_child());
        }
    }

    /// The order is fixed (STYLE.md 10): session, fd 3, limits, (uid/gid: std, before this hook), death signal,
    /// parent check, SIGXFSZ ignored, no-new-privs and seccomp last.
    fn run_in_child(&self) -> std::io::Result<()> {
        if self.sandbox.is_some() {
            // SAFETY: setsid has no arguments; a new session detaches from the supervisor's terminal (TIOCSTI).
            if unsafe { libc::setsid() } == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if let Some(fd) = self.listen_fd {
            if fd == WORKER_LISTEN_FD {
                // dup2 onto itself keeps FD_CLOEXEC, so clear it explicitly.
                // SAFETY: fcntl on an fd number we own in this process; no memory is passed.
                if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else {
                // SAFETY: dup2 between two fd numbers; the new fd 3 has no FD_CLOEXEC, so it survives exec.
                if unsafe { libc::dup2(fd, WORKER_LISTEN_FD) } == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        if let Some(sandbox) = &self.sandbox {
            sandbox.apply_limits()?;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != self.parent {
            // The supervisor died before the death signal was armed: do not run orphaned.
            return Err(std::io::Error::other("supervisor exited during start"));
        }
        if let Some(sandbox) = &self.sandbox {
            // A handler that outgrows RLIMIT_FSIZE gets EFBIG rather than a dead worker; ignored stays ignored
            // across exec.
            // SAFETY: signal() with a constant disposition.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            sandbox.apply_filters(self.landlock.as_deref().map(std::os::fd::AsRawFd::as_raw_fd))?;
        }
        Ok(())
    }
}

/// Sends `signal` to the process group led by `pid`. A group that is already gone is not an error.
pub fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, signal = signal.as_str(), error = %e, "cannot signal process group"),
    }
}

/// Marks the supervisor as a subreaper, so grandchildren whose parent exits (nginx workers after their master)
/// are reparented to us and reaped, instead of escaping to init.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps any exited child that no handle owns (orphans reparented to us as subreaper). Uses `WNOWAIT` first so it
/// never steals the exit status of a child tokio is waiting for.
pub fn reap_orphans(owned: &[u32]) {
    loop {
        let mut info: libc::siginfo_t = unsafe_zeroed_siginfo();
        // SAFETY: waitid writes into the siginfo_t we pass; WNOWAIT leaves the child waitable.
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        if rc != 0 {
            return;
        }
        // SAFETY: si_pid is valid to read after a successful waitid with WEXITED.
        let pid = unsafe { info.si_pid() };
        if pid == 0 || owned.contains(&(pid as u32)) {
            return;
        }
        let mut status = 0;
        // SAFETY: reaps exactly that pid, which is an exited child of ours not owned by any handle.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

fn unsafe_zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is a plain C struct for which all-zero bytes is a valid value.
    unsafe { std::mem::zeroed() }
}
