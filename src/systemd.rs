//! systemd integration (`Type=notify`): READY=1 once the stack serves, STATUS= lines with counts, RELOADING=1 (with
//! MONOTONIC_USEC, in the same datagram, as systemd ≥ 253 wants and 252 accepts) then READY=1 around reloads,
//! STOPPING=1 at shutdown, and WATCHDOG=1 pings at half of WATCHDOG_USEC. Without NOTIFY_SOCKET, nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where to send notifications, from NOTIFY_SOCKET (`@name` is an abstract socket).
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<NotifyTarget>,
}

#[derive(Debug, Clone)]
enum NotifyTarget {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).map(|s| match s.strip_prefix('@') {
            Some(name) => NotifyTarget::Abstract(name.as_bytes().to_vec()),
            None => NotifyTarget::Path(PathBuf::from(s)),
        });
        Notifier { target }
    }

    /// Sends one datagram of `KEY=value` lines; failures are logged at debug (systemd may be gone at shutdown).
    pub fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        let result = UnixDatagram::unbound().and_then(|socket| match target {
            NotifyTarget::Path(path) => socket.send_to(message.as_bytes(), path).map(|_| ()),
            NotifyTarget::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &addr).map(|_| ())
            }
        });
        if let Err(e) = result {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id()));
    }

    pub fn reloading(&self) {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the struct we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// The watchdog interval (half of WATCHDOG_USEC), when systemd asked for pings.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
