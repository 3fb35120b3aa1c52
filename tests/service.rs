//! `fastfn service unit` and `fastfn service install`: the generated unit passes `systemd-analyze verify` with no
//! complaint about it, `install --unit-dir` writes exactly that unit as root, and refuses (exit 1, with a hint)
//! otherwise. No stack is started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::FASTFN;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn text(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn fastfn(args: &[&str]) -> Output {
    Command::new(FASTFN).args(args).output().expect("run fastfn")
}

fn systemd_analyze() -> Option<PathBuf> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].iter().map(PathBuf::from).find(|p| p.is_file())
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let Some(analyze) = systemd_analyze() else {
        println!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: [(&str, &[&str]); 4] = [
        ("fastfn", &["/srv/functions"]),
        ("api", &["--name", "api", "--listen", "0.0.0.0:80", "--user", "nobody", "/home/ana/functions"]),
        ("spaced", &["--name", "spaced", "--env", "FN_SHUTDOWN_GRACE_MS=45000", "--env", "GREETING=hello \"you\" 100%", "/srv/my functions"]),
        ("v6", &["--name", "v6", "--listen", "[::1]:9000", "--env", "FN_ADMIN_TOKEN_FILE=/etc/fastfn/admin-token", "/tmp/functions"]),
    ];
    for (name, args) in cases {
        let mut argv = vec!["service", "unit"];
        argv.extend_from_slice(args);
        let out = fastfn(&argv);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let unit = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(unit.contains(&format!("ExecStart={FASTFN} run --native ")), "ExecStart runs this binary:\n{unit}");
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, &unit).expect("write unit");
        let verify = Command::new(&analyze).arg("verify").arg(&path).env("SYSTEMD_LOG_COLOR", "0").output().expect("run systemd-analyze");
        let report = text(&verify);
        println!("systemd-analyze verify {name}.service: {report}");
        assert!(verify.status.success(), "{report}\n{unit}");
        // systemd-analyze exits 0 on warnings (unknown keys, bad values): any line about the unit is a failure. Lines
        // about the host's own units (a container's quirks) are not ours.
        let output = format!("{}{}", String::from_utf8_lossy(&verify.stderr), String::from_utf8_lossy(&verify.stdout));
        let about_unit: Vec<&str> = output.lines().filter(|l| l.contains(&format!("{name}.service")) || l.contains(FASTFN)).collect();
        assert!(about_unit.is_empty(), "systemd-analyze complains about the unit:\n{}\n{unit}", about_unit.join("\n"));
    }
}

#[test]
fn a_bad_unit_is_caught_by_the_verify_check() {
    // Guards the test above: verify really reads the file and reports a bad line on stderr.
    let Some(analyze) = systemd_analyze() else {
        println!("skipped: systemd-analyze is not installed");
        return;
    };
    let out = fastfn(&["service", "unit", "/srv/functions"]);
    let unit = String::from_utf8_lossy(&out.stdout).replace("ProtectClock=yes", "ProtectClok=yes");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.service");
    std::fs::write(&path, unit).expect("write unit");
    let verify = Command::new(&analyze).arg("verify").arg(&path).output().expect("run systemd-analyze");
    assert!(String::from_utf8_lossy(&verify.stderr).contains("bad.service"), "{}", text(&verify));
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    for (args, what) in [
        (&["service", "unit", "--listen", "nowhere", "/srv/f"][..], "--listen"),
        (&["service", "unit", "--env", "FN_ADMIN_TOKEN=0123456789abcdef01234567", "/srv/f"][..], "FN_ADMIN_TOKEN_FILE"),
        (&["service", "install", "--name", "../etc", "/srv/f"][..], "--name"),
    ] {
        let out = fastfn(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(what), "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{}", text(&out));
    }
}

/// Removes what `install` prepared outside the temp dir.
struct CacheCleanup(PathBuf);

impl Drop for CacheCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn install_as_root_writes_the_unit_and_prepares_its_dirs() {
    if !is_root() {
        println!("skipped: `service install` writes only as root (the non-root refusal has its own test)");
        return;
    }
    let name = format!("fastfn-test-{}", std::process::id());
    let cache = Path::new("/var/cache").join(&name);
    let _cleanup = CacheCleanup(cache.clone());
    let functions = tempfile::tempdir().expect("temp dir");
    let units = tempfile::tempdir().expect("temp dir");
    let unit_dir = units.path().join("system");
    let dir = functions.path().to_str().expect("utf-8 path");
    let unit_dir_arg = unit_dir.to_str().expect("utf-8 path");
    // `nobody` exists everywhere, so the test creates no user.
    let flags = ["--name", &name, "--user", "nobody", "--listen", "127.0.0.1:18999"];
    let install = |extra: &[&str]| {
        let mut argv = vec!["service", "install", "--unit-dir", unit_dir_arg];
        argv.extend_from_slice(&flags);
        argv.extend_from_slice(extra);
        argv.push(dir);
        fastfn(&argv)
    };

    let out = install(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let path = unit_dir.join(format!("{name}.service"));
    assert!(said.contains(&format!("wrote {}", path.display())) && said.contains(&format!("systemctl enable --now {name}")), "{said}");
    let written = std::fs::read_to_string(&path).expect("unit written");
    let mut argv = vec!["service", "unit"];
    argv.extend_from_slice(&flags);
    argv.push(dir);
    let printed = fastfn(&argv);
    assert_eq!(written, String::from_utf8_lossy(&printed.stdout), "install writes what `service unit` prints");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o644);
    let go_cache = std::fs::metadata(cache.join("go-build")).expect("go cache prepared");
    assert_eq!((go_cache.uid(), go_cache.mode() & 0o777), (0, 0o700));

    let again = install(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"), "{}", text(&again));

    std::fs::write(&path, format!("{written}# a local edit\n")).expect("edit");
    let refused = install(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"), "{}", text(&refused));
    let forced = install(&["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_eq!(std::fs::read_to_string(&path).expect("unit"), written);
}

#[test]
fn install_as_non_root_exits_1_with_a_sudo_hint() {
    let units = tempfile::tempdir().expect("temp dir");
    let unit_dir = units.path().join("system");
    let args = ["service", "install", "--unit-dir", unit_dir.to_str().expect("utf-8 path"), "/srv/functions"];
    let out = if is_root() {
        // Drop to nobody for this one command.
        if !Path::new("/usr/bin/setpriv").is_file() {
            println!("skipped: running as root and setpriv is missing to drop to nobody");
            return;
        }
        Command::new("/usr/bin/setpriv").args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", FASTFN]).args(args).output().expect("run fastfn as nobody")
    } else {
        fastfn(&args)
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must run as root") && stderr.contains("hint: sudo"), "{}", text(&out));
    assert!(!unit_dir.exists(), "nothing written");
}
