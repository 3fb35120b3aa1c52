//! The kernel sandbox every function worker runs under (DESIGN decision 6): resource limits, a privilege drop when
//! started as root, no-new-privs, and a seccomp filter that refuses the syscalls a function never needs. Landlock
//! (filesystem confinement: read the system and its own folder, write only its tmp, execute only its interpreter)
//! is built per worker; see docs/security.md for what is and is not enforced.
//!
//! Prepare in the parent, apply in the child: `SandboxPolicy` (data) becomes a `PreparedSandbox` (BPF compiled,
//! limits computed) before the fork, and the child only makes raw syscalls on those values, in this order:
//! new session → rlimits → (uid/gid dropped by std before our hook) → parent-death signal → parent check →
//! SIGXFSZ ignored → no-new-privs → Landlock → seccomp, last, so that nothing above is filtered.

use std::collections::BTreeMap;
use std::sync::Arc;

use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};

/// What a denied syscall returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// EPERM: "not allowed".
    Eperm,
    /// ENOSYS: "not implemented", so runtimes fall back (libuv without io_uring, glibc `clone` without `clone3`).
    Enosys,
}

/// When a listed syscall is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Any of these bits set in argument `arg` (e.g. `clone` with a `CLONE_NEW*` flag).
    AnyBit { arg: u8, bits: u64 },
    /// Argument `arg`'s low 32 bits equal `value` (e.g. `socket(AF_ALG)`, `ioctl(TIOCSTI)`).
    Equals { arg: u8, value: u64 },
}

/// One line of the policy: the syscall, what it gets, when, and why.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub nr: i64,
    pub deny: Deny,
    pub when: When,
    /// Documentation of the table: docs/security.md must carry it (a test checks).
    #[cfg_attr(not(test), allow(dead_code))]
    pub why: &'static str,
}

const CLONE_NEW_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

macro_rules! deny {
    ($name:ident, $deny:expr, $when:expr, $why:expr) => {
        Entry { name: stringify!($name), nr: paste_nr!($name), deny: $deny, when: $when, why: $why }
    };
}

macro_rules! paste_nr {
    (ptrace) => { libc::SYS_ptrace };
    (process_vm_readv) => { libc::SYS_process_vm_readv };
    (process_vm_writev) => { libc::SYS_process_vm_writev };
    (kcmp) => { libc::SYS_kcmp };
    (pidfd_getfd) => { libc::SYS_pidfd_getfd };
    (process_madvise) => { libc::SYS_process_madvise };
    (mount) => { libc::SYS_mount };
    (umount2) => { libc::SYS_umount2 };
    (pivot_root) => { libc::SYS_pivot_root };
    (chroot) => { libc::SYS_chroot };
    (fsopen) => { libc::SYS_fsopen };
    (fsconfig) => { libc::SYS_fsconfig };
    (fsmount) => { libc::SYS_fsmount };
    (fspick) => { libc::SYS_fspick };
    (move_mount) => { libc::SYS_move_mount };
    (open_tree) => { libc::SYS_open_tree };
    (mount_setattr) => { libc::SYS_mount_setattr };
    (unshare) => { libc::SYS_unshare };
    (setns) => { libc::SYS_setns };
    (clone) => { libc::SYS_clone };
    (clone3) => { libc::SYS_clone3 };
    (bpf) => { libc::SYS_bpf };
    (perf_event_open) => { libc::SYS_perf_event_open };
    (userfaultfd) => { libc::SYS_userfaultfd };
    (keyctl) => { libc::SYS_keyctl };
    (add_key) => { libc::SYS_add_key };
    (request_key) => { libc::SYS_request_key };
    (io_uring_setup) => { libc::SYS_io_uring_setup };
    (io_uring_enter) => { libc::SYS_io_uring_enter };
    (io_uring_register) => { libc::SYS_io_uring_register };
    (kexec_load) => { libc::SYS_kexec_load };
    (kexec_file_load) => { libc::SYS_kexec_file_load };
    (reboot) => { libc::SYS_reboot };
    (init_module) => { libc::SYS_init_module };
    (finit_module) => { libc::SYS_finit_module };
    (delete_module) => { libc::SYS_delete_module };
    (swapon) => { libc::SYS_swapon };
    (swapoff) => { libc::SYS_swapoff };
    (acct) => { libc::SYS_acct };
    (quotactl) => { libc::SYS_quotactl };
    (syslog) => { libc::SYS_syslog };
    (vhangup) => { libc::SYS_vhangup };
    (sethostname) => { libc::SYS_sethostname };
    (setdomainname) => { libc::SYS_setdomainname };
    (fanotify_init) => { libc::SYS_fanotify_init };
    (settimeofday) => { libc::SYS_settimeofday };
    (clock_settime) => { libc::SYS_clock_settime };
    (clock_adjtime) => { libc::SYS_clock_adjtime };
    (open_by_handle_at) => { libc::SYS_open_by_handle_at };
    (name_to_handle_at) => { libc::SYS_name_to_handle_at };
    (socket) => { libc::SYS_socket };
    (ioctl) => { libc::SYS_ioctl };
    (mbind) => { libc::SYS_mbind };
    (set_mempolicy) => { libc::SYS_set_mempolicy };
    (migrate_pages) => { libc::SYS_migrate_pages };
    (move_pages) => { libc::SYS_move_pages };
    (iopl) => { libc::SYS_iopl };
    (ioperm) => { libc::SYS_ioperm };
    (modify_ldt) => { libc::SYS_modify_ldt };
    (uselib) => { libc::SYS_uselib };
    (ustat) => { libc::SYS_ustat };
    (sysfs) => { libc::SYS_sysfs };
}

const TIOCSTI: u64 = 0x5412;
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// The policy, one readable table (docs/security.md mirrors it; a test checks they agree). Everything not listed is
/// allowed: runtimes make unpredictable syscall mixes, and an allow-list breaks on upgrades.
#[cfg(target_arch = "x86_64")]
pub const POLICY: &[Entry] = &[
    deny!(ptrace, Deny::Eperm, When::Always, "read or alter other processes (secrets in memory)"),
    deny!(process_vm_readv, Deny::Eperm, When::Always, "read another process's memory"),
    deny!(process_vm_writev, Deny::Eperm, When::Always, "write another process's memory"),
    deny!(kcmp, Deny::Eperm, When::Always, "inspect other processes' kernel objects"),
    deny!(pidfd_getfd, Deny::Eperm, When::Always, "steal another process's file descriptors"),
    deny!(process_madvise, Deny::Eperm, When::Always, "act on another process's memory"),
    deny!(mount, Deny::Eperm, When::Always, "mount filesystems"),
    deny!(umount2, Deny::Eperm, When::Always, "unmount filesystems"),
    deny!(pivot_root, Deny::Eperm, When::Always, "change the root filesystem"),
    deny!(chroot, Deny::Eperm, When::Always, "change the root directory"),
    deny!(fsopen, Deny::Eperm, When::Always, "new mount API"),
    deny!(fsconfig, Deny::Eperm, When::Always, "new mount API"),
    deny!(fsmount, Deny::Eperm, When::Always, "new mount API"),
    deny!(fspick, Deny::Eperm, When::Always, "new mount API"),
    deny!(move_mount, Deny::Eperm, When::Always, "new mount API"),
    deny!(open_tree, Deny::Eperm, When::Always, "new mount API"),
    deny!(mount_setattr, Deny::Eperm, When::Always, "new mount API"),
    deny!(unshare, Deny::Eperm, When::Always, "new namespaces: a large kernel attack surface"),
    deny!(setns, Deny::Eperm, When::Always, "join other namespaces"),
    deny!(clone, Deny::Eperm, When::AnyBit { arg: 0, bits: CLONE_NEW_FLAGS }, "clone into new namespaces (threads and forks stay allowed)"),
    deny!(clone3, Deny::Enosys, When::Always, "its flags are in memory a filter cannot read: ENOSYS makes libc fall back to clone"),
    deny!(bpf, Deny::Eperm, When::Always, "load BPF programs"),
    deny!(perf_event_open, Deny::Eperm, When::Always, "performance counters: exploit primitive"),
    deny!(userfaultfd, Deny::Eperm, When::Always, "page-fault handling: exploit primitive"),
    deny!(keyctl, Deny::Eperm, When::Always, "kernel keyring"),
    deny!(add_key, Deny::Eperm, When::Always, "kernel keyring"),
    deny!(request_key, Deny::Eperm, When::Always, "kernel keyring"),
    deny!(io_uring_setup, Deny::Enosys, When::Always, "io_uring bypasses the filter; ENOSYS makes libuv fall back"),
    deny!(io_uring_enter, Deny::Enosys, When::Always, "io_uring"),
    deny!(io_uring_register, Deny::Enosys, When::Always, "io_uring"),
    deny!(kexec_load, Deny::Eperm, When::Always, "load a new kernel"),
    deny!(kexec_file_load, Deny::Eperm, When::Always, "load a new kernel"),
    deny!(reboot, Deny::Eperm, When::Always, "reboot"),
    deny!(init_module, Deny::Eperm, When::Always, "load kernel modules"),
    deny!(finit_module, Deny::Eperm, When::Always, "load kernel modules"),
    deny!(delete_module, Deny::Eperm, When::Always, "unload kernel modules"),
    deny!(swapon, Deny::Eperm, When::Always, "swap"),
    deny!(swapoff, Deny::Eperm, When::Always, "swap"),
    deny!(acct, Deny::Eperm, When::Always, "process accounting"),
    deny!(quotactl, Deny::Eperm, When::Always, "disk quotas"),
    deny!(syslog, Deny::Eperm, When::Always, "kernel log"),
    deny!(vhangup, Deny::Eperm, When::Always, "terminal hangup"),
    deny!(sethostname, Deny::Eperm, When::Always, "host name"),
    deny!(setdomainname, Deny::Eperm, When::Always, "domain name"),
    deny!(fanotify_init, Deny::Eperm, When::Always, "filesystem-wide event monitoring"),
    deny!(settimeofday, Deny::Eperm, When::Always, "set the clock"),
    deny!(clock_settime, Deny::Eperm, When::Always, "set the clock"),
    deny!(clock_adjtime, Deny::Eperm, When::Always, "adjust the clock"),
    deny!(open_by_handle_at, Deny::Eperm, When::Always, "open files by handle: the classic container escape"),
    deny!(name_to_handle_at, Deny::Eperm, When::Always, "file handles"),
    deny!(socket, Deny::Eperm, When::Equals { arg: 0, value: AF_ALG }, "kernel crypto sockets (AF_ALG)"),
    deny!(socket, Deny::Eperm, When::Equals { arg: 0, value: AF_VSOCK }, "VM sockets (AF_VSOCK)"),
    deny!(ioctl, Deny::Eperm, When::Equals { arg: 1, value: TIOCSTI }, "push input into a terminal (TIOCSTI)"),
    deny!(mbind, Deny::Eperm, When::Always, "NUMA memory policy"),
    deny!(set_mempolicy, Deny::Eperm, When::Always, "NUMA memory policy"),
    deny!(migrate_pages, Deny::Eperm, When::Always, "move other processes' pages"),
    deny!(move_pages, Deny::Eperm, When::Always, "move other processes' pages"),
    deny!(iopl, Deny::Eperm, When::Always, "raw I/O ports"),
    deny!(ioperm, Deny::Eperm, When::Always, "raw I/O ports"),
    deny!(modify_ldt, Deny::Eperm, When::Always, "16-bit segments"),
    deny!(uselib, Deny::Eperm, When::Always, "obsolete"),
    deny!(ustat, Deny::Eperm, When::Always, "obsolete"),
    deny!(sysfs, Deny::Eperm, When::Always, "obsolete"),
];

#[cfg(not(target_arch = "x86_64"))]
pub const POLICY: &[Entry] = &[];

#[cfg(target_arch = "x86_64")]
const ARCH: Option<TargetArch> = Some(TargetArch::x86_64);
#[cfg(target_arch = "aarch64")]
const ARCH: Option<TargetArch> = Some(TargetArch::aarch64);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: Option<TargetArch> = None;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(String),
    #[error("cannot build the Landlock ruleset: {0}")]
    Landlock(String),
}

// ---------------------------------------------------------------------------------------------------------------
// Landlock: what a worker may read, write and execute.

/// The Landlock ABI whose rights fastfn handles (newer kernels are fine; older ones enforce what they know).
const LANDLOCK_ABI: landlock::ABI = landlock::ABI::V5;

/// System files every runtime reads (the dynamic loader's cache, name resolution, time zone, TLS roots).
const SYSTEM_READ: &[&str] = &[
    "/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
    "/etc/host.conf", "/etc/gai.conf", "/etc/passwd", "/etc/group", "/etc/services", "/etc/protocols", "/etc/ssl",
    "/etc/ca-certificates", "/etc/pki", "/etc/php", "/sys/devices/system/cpu",
];
/// Devices a handler may open for reading and writing.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];
/// Never readable by the handler under strict_fs, even in its own folder.
pub const PROTECTED_FILES: &[&str] = &["fn.env.json", "fn.config.json", "fn.test_events.json"];

/// What one worker may touch.
pub struct FsPolicy<'a> {
    pub function_dir: &'a std::path::Path,
    pub tmp: &'a std::path::Path,
    pub runtimes_dir: &'a std::path::Path,
    pub interpreter: &'a std::path::Path,
    /// Its installed dependencies (read-only).
    pub deps_dir: Option<&'a std::path::Path>,
    /// `fn.config.json` `"sandbox": {"exec": true}`: may run other programs.
    pub allow_exec: bool,
    /// `FN_STRICT_FS` (default on) and not `"strict_fs": false`: its own fn.env.json / fn.config.json are unreadable.
    pub strict_fs: bool,
}

/// The highest Landlock ABI the kernel offers (0 = none).
pub fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns a number.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    rc.max(0)
}

/// Builds a worker's Landlock ruleset in the parent. `None` when the kernel has no Landlock (best effort).
pub fn landlock_ruleset(policy: &FsPolicy<'_>) -> Result<Option<std::os::fd::OwnedFd>, SandboxError> {
    use landlock::{Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr};
    use std::path::PathBuf;
    let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
    let read_dir: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::ReadDir;
    let read_file: BitFlags<AccessFs> = AccessFs::ReadFile.into();
    // (path, rights if it is a folder, rights if it is a file); missing paths are skipped.
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>, BitFlags<AccessFs>)> = Vec::new();
    for path in SYSTEM_READ {
        rules.push((PathBuf::from(path), read_dir, read_file));
    }
    for path in DEVICES {
        rules.push((PathBuf::from(path), read_dir, AccessFs::ReadFile | AccessFs::WriteFile));
    }
    rules.push((policy.runtimes_dir.to_path_buf(), read_dir, read_file));
    if let Some(deps) = policy.deps_dir {
        rules.push((deps.to_path_buf(), read_dir, read_file));
    }
    // The interpreter's own tree (a pyenv or nvm install outside /usr), and the right to execute it.
    if let Some(prefix) = policy.interpreter.parent().and_then(|bin| bin.parent()).filter(|p| p.parent().is_some()) {
        rules.push((prefix.to_path_buf(), read_dir, read_file));
    }
    let exec: BitFlags<AccessFs> = AccessFs::Execute | AccessFs::ReadFile;
    rules.push((policy.interpreter.to_path_buf(), exec, exec));
    for loader in ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"] {
        rules.push((PathBuf::from(loader), exec, exec));
    }
    if policy.allow_exec {
        for dir in ["/usr", "/bin", "/sbin"] {
            rules.push((PathBuf::from(dir), read_dir | AccessFs::Execute, exec));
        }
    }
    // Its own folder: everything in it, or (strict) everything but the protected files, one rule per entry.
    if policy.strict_fs {
        rules.push((policy.function_dir.to_path_buf(), AccessFs::ReadDir.into(), read_file));
        if let Ok(entries) = std::fs::read_dir(policy.function_dir) {
            for entry in entries.flatten() {
                if !PROTECTED_FILES.iter().any(|p| entry.file_name() == std::ffi::OsStr::new(p)) {
                    rules.push((entry.path(), read_dir, read_file));
                }
            }
        }
    } else {
        rules.push((policy.function_dir.to_path_buf(), read_dir, read_file));
    }
    // Its private tmp: read and write; execute only if it may run programs.
    let mut tmp_access = AccessFs::from_all(LANDLOCK_ABI);
    if !policy.allow_exec {
        tmp_access.remove(AccessFs::Execute);
    }
    rules.push((policy.tmp.to_path_buf(), tmp_access, read_file));

    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(LANDLOCK_ABI)).map_err(|e| err(&e))?.create().map_err(|e| err(&e))?;
    for (path, dir_access, file_access) in rules {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let Ok(fd) = PathFd::new(&path) else { continue };
        let access = if meta.is_dir() { dir_access } else { file_access };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(|e| err(&e))?;
    }
    Ok(ruleset.into())
}

/// `struct landlock_path_beneath_attr` (packed, as the kernel declares it).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// In the child: adds "read its own /proc/<pid>" (only the child knows its pid), then enforces the ruleset.
pub fn apply_landlock(ruleset_fd: std::os::fd::RawFd) -> std::io::Result<()> {
    const READ_FILE: u64 = 1 << 2;
    const READ_DIR: u64 = 1 << 3;
    const RULE_PATH_BENEATH: libc::c_long = 1;
    // SAFETY: open() of a static NUL-terminated path with O_PATH; the fd is closed below.
    let proc_fd = unsafe { libc::open(c"/proc/self".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if proc_fd >= 0 {
        let attr = PathBeneathAttr { allowed_access: READ_FILE | READ_DIR, parent_fd: proc_fd };
        // SAFETY: the kernel copies the attribute struct we pass; both fds are ours.
        unsafe {
            libc::syscall(libc::SYS_landlock_add_rule, ruleset_fd, RULE_PATH_BENEATH, &attr as *const PathBeneathAttr, 0u32);
            libc::close(proc_fd);
        }
    }
    // SAFETY: restricts this (single-threaded, about to exec) process with a ruleset fd we own.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset_fd, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Compiles the policy into one BPF program per deny action (filters stack; an arch mismatch kills).
pub fn compile(policy: &[Entry]) -> Result<Vec<BpfProgram>, SandboxError> {
    let Some(arch) = ARCH else { return Ok(Vec::new()) };
    let mut programs = Vec::new();
    for (deny, action) in [(Deny::Eperm, SeccompAction::Errno(libc::EPERM as u32)), (Deny::Enosys, SeccompAction::Errno(libc::ENOSYS as u32))] {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for entry in policy.iter().filter(|e| e.deny == deny) {
            let conditions: Vec<Vec<SeccompCondition>> = match entry.when {
                When::Always => Vec::new(),
                When::AnyBit { arg, bits } => (0..64)
                    .map(|b| 1u64 << b)
                    .filter(|bit| bits & bit != 0)
                    .map(|bit| SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(bit), bit).map(|c| vec![c]))
                    .collect::<Result<_, _>>()
                    .map_err(|e| SandboxError::Seccomp(format!("{}: {e}", entry.name)))?,
                When::Equals { arg, value } => vec![vec![SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
                    .map_err(|e| SandboxError::Seccomp(format!("{}: {e}", entry.name)))?]],
            };
            let list = rules.entry(entry.nr).or_default();
            for conds in conditions {
                list.push(SeccompRule::new(conds).map_err(|e| SandboxError::Seccomp(format!("{}: {e}", entry.name)))?);
            }
        }
        if rules.is_empty() {
            continue;
        }
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
        programs.push(BpfProgram::try_from(filter).map_err(|e| SandboxError::Seccomp(e.to_string()))?);
    }
    Ok(programs)
}

/// Resource limits (soft = hard) for workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_DATA: the memory cap (not RLIMIT_AS: Node's WASM reserves gigabytes of address space).
    pub data_bytes: u64,
    pub open_files: u64,
    /// RLIMIT_NPROC counts every process and thread of the uid: set only when workers run as their own user.
    pub processes: Option<u64>,
    pub file_size_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { data_bytes: 1024 * 1024 * 1024, open_files: 4096, processes: Some(1024), file_size_bytes: 256 * 1024 * 1024 }
    }
}

/// Everything the child applies, computed before the fork.
pub struct PreparedSandbox {
    /// (resource, value) pairs for setrlimit, each already capped at the current hard limit.
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    filters: Vec<BpfProgram>,
    pub seccomp: bool,
}

impl PreparedSandbox {
    pub fn prepare(limits: &Limits, drops_privileges: bool) -> Result<Arc<PreparedSandbox>, SandboxError> {
        let mut wanted: Vec<(libc::__rlimit_resource_t, u64)> = vec![
            (libc::RLIMIT_DATA, limits.data_bytes),
            (libc::RLIMIT_NOFILE, limits.open_files),
            (libc::RLIMIT_FSIZE, limits.file_size_bytes),
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_MEMLOCK, 64 * 1024),
        ];
        if let (Some(n), true) = (limits.processes, drops_privileges) {
            wanted.push((libc::RLIMIT_NPROC, n));
        }
        let rlimits = wanted.into_iter().map(|(resource, value)| (resource, cap_at_hard(resource, value))).collect();
        let filters = compile(POLICY)?;
        let seccomp = !filters.is_empty();
        Ok(Arc::new(PreparedSandbox { rlimits, filters, seccomp }))
    }

    /// Runs in the child after fork (and after std dropped uid/gid): raw syscalls on prepared values only.
    pub fn apply_limits(&self) -> std::io::Result<()> {
        for &(resource, value) in &self.rlimits {
            let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
            // SAFETY: setrlimit reads the struct we pass; no other memory is involved.
            if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The last steps before exec: no-new-privs, Landlock (when a ruleset was built), then each seccomp filter.
    pub fn apply_filters(&self, landlock: Option<std::os::fd::RawFd>) -> std::io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if let Some(fd) = landlock {
            apply_landlock(fd)?;
        }
        for filter in &self.filters {
            seccompiler::apply_filter(filter).map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))?;
        }
        Ok(())
    }
}

/// An unprivileged process cannot raise a hard limit: never ask for more than the current one.
fn cap_at_hard(resource: libc::__rlimit_resource_t, wanted: u64) -> libc::rlim_t {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return wanted;
    }
    wanted.min(current.rlim_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_compiles_and_lists_what_the_issue_requires() {
        let programs = compile(POLICY).expect("compiles");
        assert_eq!(programs.len(), 2, "one EPERM and one ENOSYS filter");
        let names: Vec<&str> = POLICY.iter().map(|e| e.name).collect();
        for required in [
            "ptrace", "process_vm_readv", "process_vm_writev", "mount", "pivot_root", "kexec_load", "kexec_file_load", "init_module",
            "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "unshare", "setns", "clone",
            "userfaultfd", "open_by_handle_at", "swapon", "swapoff", "reboot", "acct", "quotactl", "iopl", "ioperm",
            "io_uring_setup", "io_uring_enter", "io_uring_register",
        ] {
            assert!(names.contains(&required), "{required} missing from the policy");
        }
        assert!(POLICY.iter().filter(|e| e.name.starts_with("io_uring")).all(|e| e.deny == Deny::Enosys));
    }

    #[test]
    fn the_docs_mirror_the_table() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).expect("docs/security.md");
        for entry in POLICY {
            assert!(doc.contains(&format!("`{}`", entry.name)), "docs/security.md does not list `{}`", entry.name);
            assert!(doc.contains(entry.why), "docs/security.md does not give the reason for `{}`: {}", entry.name, entry.why);
        }
    }

    /// A filter binds the thread that loads it, so the test applies it in a thread of its own.
    #[test]
    fn the_filter_denies_in_a_thread_and_leaves_the_rest_alone() {
        let sandbox = PreparedSandbox::prepare(&Limits::default(), false).expect("prepare");
        let handle = std::thread::spawn(move || {
            sandbox.apply_filters(None).expect("apply");
            let errno = |rc: libc::c_long| if rc == -1 { std::io::Error::last_os_error().raw_os_error() } else { Some(0) };
            // SAFETY: raw syscalls with invalid or harmless arguments; the filter answers before the kernel acts.
            unsafe {
                (
                    errno(libc::syscall(libc::SYS_ptrace, 0, 0, 0, 0)),
                    errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
                    errno(libc::syscall(libc::SYS_io_uring_setup, 0, 0)),
                    errno(libc::syscall(libc::SYS_socket, AF_ALG as libc::c_long, libc::SOCK_SEQPACKET, 0)),
                    errno(libc::syscall(libc::SYS_getpid)),
                )
            }
        });
        let (ptrace, unshare, io_uring, af_alg, getpid) = handle.join().expect("thread");
        assert_eq!(ptrace, Some(libc::EPERM));
        assert_eq!(unshare, Some(libc::EPERM));
        assert_eq!(io_uring, Some(libc::ENOSYS));
        assert_eq!(af_alg, Some(libc::EPERM));
        assert_eq!(getpid, Some(0));
    }
}
