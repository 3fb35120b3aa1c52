//! The gateway process: OpenResty or nginx+Lua running the rendered config in the foreground.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::output::OutputSink;
use super::process::{signal_group, ChildSetup};
use crate::binaries::Nginx;

pub struct Gateway {
    pub child: Child,
    pub pid: u32,
}

impl Gateway {
    pub fn spawn(nginx: &Nginx, prefix: &Path, conf: &Path, error_log: &Path, output: &OutputSink) -> std::io::Result<Gateway> {
        let mut command = tokio::process::Command::new(&nginx.binary);
        command
            .args(crate::render::nginx_args(prefix, error_log, conf))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        ChildSetup::new(None).apply(&mut command);
        let mut child = command.spawn()?;
        let pid = child.id().ok_or_else(|| std::io::Error::other("nginx exited at once"))?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(output.clone().drain("nginx".into(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(output.clone().drain("nginx".into(), err));
        }
        Ok(Gateway { child, pid })
    }

    /// Graceful stop: QUIT lets workers finish in-flight requests; after `grace`, SIGKILL the whole group.
    pub async fn stop(&mut self, grace: Duration) {
        // QUIT goes to the master only: it closes the listeners and lets its workers drain.
        if let Ok(raw) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), Signal::SIGQUIT);
        }
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            tracing::warn!(pid = self.pid, "nginx did not stop within the grace period: killing it");
        }
        // Workers of a master that died, or one that hung, are still in its group.
        signal_group(self.pid, Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
    }
}

/// The address to probe the listener on: a wildcard bind is reached through loopback.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port()),
        _ => listen,
    }
}

/// One `GET path` over a fresh TCP connection; returns the status code.
pub async fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: fastfn-supervisor\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12).and_then(|code| code.parse().ok()).ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
}

/// Waits until nginx answers `/_fn/health` (200, or 503 when a runtime is down: the gateway answers either way),
/// or fails if nginx exits or the deadline passes.
pub async fn wait_ready(gateway: &mut Gateway, listen: SocketAddr, deadline: Duration) -> Result<(), String> {
    let addr = probe_addr(listen);
    let until = Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = gateway.child.try_wait() {
            return Err(format!("nginx exited during start ({})", crate::types::ProcessEnd::from_status(status)));
        }
        if let Ok(Ok(200 | 503)) = tokio::time::timeout(Duration::from_millis(500), http_status(addr, "/_fn/health")).await {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(format!("nginx did not answer on {addr} within {} s", deadline.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The master's worker processes that still accept connections: after a HUP, the old ones keep accepting until they
/// have handled their QUIT (then their title says "is shutting down"), so requests can still meet the old catalog.
pub fn accepting_workers(master: u32) -> Vec<u32> {
    super::usage::children(master)
        .into_iter()
        .filter(|pid| {
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let title = String::from_utf8_lossy(&title);
            title.contains("worker process") && !title.contains("shutting down")
        })
        .collect()
}

/// Waits (up to `limit`) until none of `old` accepts connections any more; false when the limit passed.
pub async fn old_workers_stopped_accepting(master: u32, old: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let accepting = accepting_workers(master);
        if !old.iter().any(|pid| accepting.contains(pid)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
