//! `fastfn logs`: prints the tail of an instance's log files and, with `--follow`, what they gain, across rotations.
//! Reads the files in the run dir, so it works whether or not the instance runs (as the user allowed to read them).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which log a user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// nginx's error log (gateway and Lua messages).
    Nginx,
    /// nginx's access log.
    Access,
    /// Everything function workers print, all functions together.
    Functions,
    /// One function's own log (`logs/processes/fn_<name>.log`).
    Function(String),
}

impl Source {
    /// `--process nginx|access|functions`, or `--fn NAME`; nginx and the functions when neither is given.
    pub fn select(process: Option<&str>, function: Option<&str>) -> Result<Vec<Source>, String> {
        match (process, function) {
            (Some(_), Some(_)) => Err("give --process or --fn, not both".into()),
            (None, Some(name)) if name.trim().is_empty() => Err("--fn needs a function name".into()),
            (None, Some(name)) => Ok(vec![Source::Function(name.to_string())]),
            (Some("nginx"), None) => Ok(vec![Source::Nginx]),
            (Some("access"), None) => Ok(vec![Source::Access]),
            (Some("functions"), None) => Ok(vec![Source::Functions]),
            (Some(other), None) => Err(format!("--process must be nginx, access or functions, not `{other}`")),
            (None, None) => Ok(vec![Source::Nginx, Source::Functions]),
        }
    }

    pub fn path(&self, run_dir: &Path) -> PathBuf {
        let logs = run_dir.join("logs");
        match self {
            Source::Nginx => logs.join("error.log"),
            Source::Access => logs.join("access.log"),
            Source::Functions => logs.join("runtime.log"),
            // The same name the supervisor gives the file: the process prefix `fn:<name>`.
            Source::Function(name) => logs.join("processes").join(crate::supervise::logfile::file_name(&format!("fn:{name}"))),
        }
    }
}

/// The function logs present, by the name their lines carry (`fn:<name>` → `<name>`).
fn known_functions(run_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run_dir.join("logs").join("processes"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("fn_")).and_then(|n| n.strip_suffix(".log")).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The last `count` lines of `path` (reading at most its last 8 MiB).
pub fn tail(path: &Path, count: usize) -> std::io::Result<Vec<String>> {
    const WINDOW: u64 = 8 * 1024 * 1024;
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(WINDOW)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(count)..].iter().map(|l| l.to_string()).collect())
}

/// Prints the tails, then (when `follow`) new lines as they are written, forever. Returns the exit code.
pub fn show(run_dir: &Path, sources: &[Source], lines: usize, follow: bool) -> i32 {
    let labelled = sources.len() > 1;
    let mut positions: HashMap<PathBuf, (u64, u64)> = HashMap::new();
    let mut failed = false;
    for source in sources {
        let path = source.path(run_dir);
        match tail(&path, lines) {
            Ok(tail) => {
                if labelled {
                    println!("==> {} <==", path.display());
                }
                for line in tail {
                    println!("{line}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {}
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                if let (Source::Function(_), std::io::ErrorKind::NotFound) = (source, e.kind()) {
                    eprintln!("hint: functions with a log: {}", known_functions(run_dir).join(", "));
                }
                failed = true;
            }
        }
        let at = std::fs::metadata(&path).map(|m| (m.ino(), m.len())).unwrap_or((0, 0));
        positions.insert(path, at);
    }
    if !follow {
        return i32::from(failed);
    }
    let mut out = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for source in sources {
            let path = source.path(run_dir);
            let Some((inode, offset)) = positions.get(&path).copied() else { continue };
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            // Rotated (a new file at the path) or truncated: read the new one from its start.
            let from = if meta.ino() != inode || meta.len() < offset { 0 } else { offset };
            if meta.len() == from && meta.ino() == inode {
                continue;
            }
            let Ok(mut file) = std::fs::File::open(&path) else { continue };
            let mut bytes = Vec::new();
            if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
                continue;
            }
            // Only whole lines; a partial last line waits for its end.
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let prefix = if labelled { format!("{}: ", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()) } else { String::new() };
            for line in String::from_utf8_lossy(&bytes[..whole]).lines() {
                if writeln!(out, "{prefix}{line}").is_err() {
                    return 0; // stdout closed (`| head`): done.
                }
            }
            let _ = out.flush();
            positions.insert(path, (meta.ino(), from + whole as u64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_chosen_by_flag() {
        assert_eq!(Source::select(None, None), Ok(vec![Source::Nginx, Source::Functions]));
        assert_eq!(Source::select(Some("access"), None), Ok(vec![Source::Access]));
        assert_eq!(Source::select(None, Some("api/users")), Ok(vec![Source::Function("api/users".into())]));
        assert!(Source::select(Some("php"), None).is_err());
        assert!(Source::select(Some("nginx"), Some("x")).is_err());
        let dir = Path::new("/run/x");
        assert_eq!(Source::Function("hello/handler.py".into()).path(dir), dir.join("logs/processes/fn_hello_handler.py.log"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\n").expect("write");
        assert_eq!(tail(&path, 2).expect("tail"), vec!["b", "c"]);
        assert_eq!(tail(&path, 10).expect("tail"), vec!["a", "b", "c"]);
    }
}
