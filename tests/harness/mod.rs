//! The stack builder: writes a functions folder, starts `fastfn dev --native` on a free loopback port with a
//! private run dir, waits for its ready file under a deadline, and stops it (by pid) when dropped. When a test
//! fails, the stack prints its command, stderr, run-dir listing and every log.

#![allow(dead_code)]

pub mod http;
pub mod procs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use http::Response;

pub const FASTFN: &str = env!("CARGO_BIN_EXE_fastfn");
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A loopback port nothing listens on, below the kernel's ephemeral range (32768+ by default). A port from bind(0)
/// would be an ephemeral one, and the load tests' client sockets churn through those: one of them could hold the
/// port between this check and nginx binding it. Each test process walks its own offset of the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20000;
    const SPAN: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN)
}

/// Waits until `check` is true or the deadline passes.
pub fn wait_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

#[must_use]
pub struct StackBuilder {
    files: Vec<(String, String)>,
    env: Vec<(String, String)>,
    mode: &'static str,
    listen: Option<String>,
    run_base: Option<PathBuf>,
}

pub struct Stack {
    pub port: u16,
    pub child: Child,
    pub functions: tempfile::TempDir,
    pub work: tempfile::TempDir,
    pub ready: serde_json::Value,
    command: String,
    /// error.log lines containing one of these are expected by the test (a client error it provoked, say).
    allowed_log: Vec<&'static str>,
}

impl Stack {
    #[allow(clippy::new_ret_no_self)] // Stack::new().file(..).start() reads best at call sites
    pub fn new() -> StackBuilder {
        StackBuilder { files: Vec::new(), env: Vec::new(), mode: "dev", listen: None, run_base: None }
    }
}

impl StackBuilder {
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files.push((path.to_string(), contents.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Listen somewhere other than a free loopback port (ADDR:PORT).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_string());
        self
    }

    /// Keep the run state under this folder instead of the test's private one (a small tmpfs, say).
    pub fn run_base(mut self, base: &std::path::Path) -> Self {
        self.run_base = Some(base.to_path_buf());
        self
    }

    pub fn mode(mut self, mode: &'static str) -> Self {
        self.mode = mode;
        self
    }

    /// Writes the functions folder and returns the command that would start the stack (for tests that expect a
    /// start to fail).
    pub fn prepare(self) -> (Command, tempfile::TempDir, tempfile::TempDir, u16) {
        let functions = tempfile::Builder::new().prefix("fastfn-fns-").tempdir().expect("functions temp dir");
        // As root, workers run as an unprivileged user, which must be able to read the functions folder.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(functions.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod functions dir");
        }
        for (path, contents) in &self.files {
            let target = functions.path().join(path);
            std::fs::create_dir_all(target.parent().expect("file has a folder")).expect("mkdir");
            std::fs::write(&target, contents).expect("write function file");
        }
        // Short prefix: worker socket paths must stay under 108 bytes.
        let work = tempfile::Builder::new().prefix("ffn-").tempdir_in("/tmp").expect("work temp dir");
        let (listen, port) = match &self.listen {
            Some(addr) => (addr.clone(), addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("ADDR:PORT")),
            None => {
                let port = free_port();
                (format!("127.0.0.1:{port}"), port)
            }
        };
        let mut command = Command::new(FASTFN);
        command
            .arg(self.mode)
            .arg("--native")
            .arg(functions.path())
            .arg("--listen")
            .arg(listen)
            .arg("--run-dir")
            .arg(self.run_base.clone().unwrap_or_else(|| work.path().join("run")))
            .arg("--ready-file")
            .arg(work.path().join("ready.json"))
            .env("FN_NGINX_WORKERS", "2")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        (command, functions, work, port)
    }

    pub fn start(self) -> Stack {
        let (mut command, functions, work, port) = self.prepare();
        let stdout = std::fs::File::create(work.path().join("stdout.log")).expect("stdout file");
        let stderr = std::fs::File::create(work.path().join("stderr.log")).expect("stderr file");
        command.stdout(stdout).stderr(stderr);
        let description = format!("{command:?}");
        let child = command.spawn().expect("spawn fastfn");
        let mut stack = Stack { port, child, functions, work, ready: serde_json::Value::Null, command: description, allowed_log: Vec::new() };
        let ready_file = stack.work.path().join("ready.json");
        let until = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                if let Ok(value) = serde_json::from_str(&text) {
                    stack.ready = value;
                    return stack;
                }
            }
            if let Ok(Some(status)) = stack.child.try_wait() {
                stack.dump();
                panic!("fastfn exited before it was ready: {status}");
            }
            if Instant::now() > until {
                stack.dump();
                panic!("fastfn was not ready within {READY_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Stack {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(self.ready["run_dir"].as_str().expect("ready JSON has run_dir"))
    }

    pub fn get(&self, path: &str) -> Response {
        http::get(self.port, path)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Response {
        http::request(self.port, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path} failed: {e}"))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.work.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.work.path().join("stdout.log")).unwrap_or_default()
    }

    /// Contents of a log file in the run dir (`error.log`, `access.log`, `runtime.log`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.run_dir().join("logs").join(name)).unwrap_or_default()
    }

    /// Sends a signal to fastfn and waits for it to exit.
    pub fn signal_and_wait(&mut self, signal: nix::sys::signal::Signal, deadline: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Prints everything useful to understand a failure.
    pub fn dump(&self) {
        eprintln!("===== fastfn command\n{}", self.command);
        eprintln!("===== stdout\n{}", self.stdout());
        eprintln!("===== stderr\n{}", self.stderr());
        let run = self.work.path().join("run");
        if let Ok(entries) = walk(&run) {
            eprintln!("===== run dir {}\n{}", run.display(), entries.join("\n"));
            for entry in entries.iter().filter(|e| e.ends_with(".log")) {
                eprintln!("===== {entry}\n{}", std::fs::read_to_string(entry).unwrap_or_default());
            }
        }
    }
}

fn walk(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path.display().to_string());
        }
    }
    out.sort();
    Ok(out)
}

impl Stack {
    /// Declares error.log lines this test provokes on purpose.
    pub fn allow_log(&mut self, needle: &'static str) {
        self.allowed_log.push(needle);
    }

    /// Gateway log lines that mean something broke inside nginx or the Lua gateway (Test::Nginx's "no [error]").
    pub fn error_log_problems(&self) -> Vec<String> {
        self.log("error.log")
            .lines()
            .filter(|l| ["[error]", "[crit]", "[alert]", "[emerg]"].iter().any(|level| l.contains(level)) || l.contains("NYI:"))
            .filter(|l| !self.allowed_log.iter().any(|allowed| l.contains(allowed)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        let tree = procs::descendants(self.pid());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Never leave a process behind, even when the stack misbehaved: end each one by its pid.
        let mut survivors = Vec::new();
        for pid in tree {
            if procs::alive(pid) {
                survivors.push(format!("{pid} {}", procs::command_line(pid)));
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
        }
        if std::thread::panicking() {
            return;
        }
        // Checked only once everything is stopped, so a failing check never leaks processes.
        let problems = self.error_log_problems();
        if !problems.is_empty() || !survivors.is_empty() {
            self.dump();
            panic!("nginx error.log has errors:\n{}\nprocesses that outlived fastfn:\n{}", problems.join("\n"), survivors.join("\n"));
        }
    }
}
