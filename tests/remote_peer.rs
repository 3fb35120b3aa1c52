//! Issue 4: a caller from another host. As root, the test makes a network namespace joined to this one by a veth
//! pair (a private /30 that exists only inside this test), starts the stack on the host side of the pair, and sends
//! requests from inside the namespace. Without root it says so and skips.

use std::process::Command;

use crate::harness::Stack;

const TOKEN: &str = "remote-peer-admin-token-0123456789";

/// A namespace and veth pair, removed on drop.
struct TestHost {
    ns: String,
    host_if: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

impl TestHost {
    fn create() -> Result<TestHost, String> {
        // Unique per test process, short enough for interface names (15 bytes).
        let n = std::process::id() % 100_000;
        let third = n % 250;
        let host = TestHost { ns: format!("ffn-{n}"), host_if: format!("ffa{n}"), host_ip: format!("10.213.{third}.1") };
        let peer_if = format!("ffb{n}");
        ip(&["netns", "add", &host.ns])?;
        ip(&["link", "add", &host.host_if, "type", "veth", "peer", "name", &peer_if])?;
        ip(&["link", "set", &peer_if, "netns", &host.ns])?;
        ip(&["addr", "add", &format!("{}/30", host.host_ip), "dev", &host.host_if])?;
        ip(&["link", "set", &host.host_if, "up"])?;
        ip(&["-n", &host.ns, "addr", "add", &format!("10.213.{third}.2/30"), "dev", &peer_if])?;
        ip(&["-n", &host.ns, "link", "set", &peer_if, "up"])?;
        ip(&["-n", &host.ns, "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// `curl` from inside the namespace: (status, body).
    fn curl(&self, url: &str, headers: &[&str]) -> (u16, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let out = cmd.arg(url).output().expect("run curl in the namespace");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

#[test]
fn a_caller_from_another_host_is_refused_on_the_control_plane_while_public_routes_serve() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root to create a network namespace and a veth pair (run the suite as root, as CI does)");
        return;
    }
    let host = match TestHost::create() {
        Ok(host) => host,
        Err(e) => {
            eprintln!("skipped: cannot create the test network namespace: {e}");
            return;
        }
    };
    let port = crate::harness::free_port();
    let stack = Stack::new()
        .file("hello/handler.py", "def handler(event):\n    return {'from': event['client']['ip']}\n")
        .env("FN_ADMIN_TOKEN", TOKEN)
        .env("FN_CONSOLE_ALLOWED_HOSTS", &host.host_ip)
        .listen(&format!("{}:{port}", host.host_ip))
        .start();
    let base = format!("http://{}:{port}", host.host_ip);
    let (status, body) = host.curl(&format!("{base}/hello"), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("10.213."), "the event sees the remote address: {body}");
    let (status, body) = host.curl(&format!("{base}/_fn/catalog"), &[]);
    assert_eq!((status, body.as_str()), (403, r#"{"error":"console api local-only"}"#));
    let (status, body) = host.curl(&format!("{base}/_fn/catalog"), &["X-Forwarded-For: 127.0.0.1"]);
    assert_eq!(status, 403, "a forwarded header does not make a remote caller local: {body}");
    let (status, body) = host.curl(&format!("{base}/_fn/health"), &[]);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, _) = host.curl(&format!("{base}/_fn/catalog"), &[&format!("X-Fn-Admin-Token: {TOKEN}")]);
    assert_eq!(status, 200, "the token admits a remote operator");
    drop(stack);
}
