//! Child output: every line a child prints is prefixed with who printed it, bounded, stripped of terminal escapes,
//! written to the instance's combined log and to the process's own log file (both rotated by size) and, in dev,
//! echoed to the terminal. The reader never stops draining, so a child can never block on a full pipe.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::logfile::{self, RotatingFile};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest line kept; the rest is dropped and the line marked.
pub const MAX_LINE: usize = 16 * 1024;

/// The secret values to hide in every line, shared with the instance, which replaces them on each discovery.
#[derive(Clone, Default)]
pub struct Masks(Arc<std::sync::RwLock<Vec<String>>>);

impl Masks {
    pub fn set(&self, masks: Vec<String>) {
        match self.0.write() {
            Ok(mut current) => *current = masks,
            Err(poisoned) => *poisoned.into_inner() = masks,
        }
    }

    /// The line with every secret value hidden.
    pub fn mask(&self, line: &str) -> String {
        self.apply(line.to_string())
    }

    fn apply(&self, line: String) -> String {
        match self.0.read() {
            Ok(masks) if !masks.is_empty() => crate::secrets::mask_line(&line, &masks),
            _ => line,
        }
    }
}

/// Where a sink writes: the combined log, and a directory of one log per process name.
struct Files {
    combined: Mutex<RotatingFile>,
    per_process_dir: PathBuf,
    per_process: Mutex<HashMap<String, RotatingFile>>,
    max_bytes: u64,
}

#[derive(Clone)]
pub struct OutputSink {
    files: Option<Arc<Files>>,
    echo: bool,
    masks: Masks,
}

impl OutputSink {
    /// Writes to `combined` and to `<per_process_dir>/<process>.log`, each rotated at `max_bytes`.
    pub fn open(combined: &Path, per_process_dir: &Path, max_bytes: u64, echo: bool, masks: Masks) -> std::io::Result<OutputSink> {
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(per_process_dir)?;
        let files = Files {
            combined: Mutex::new(RotatingFile::open(combined, max_bytes)?),
            per_process_dir: per_process_dir.to_path_buf(),
            per_process: Mutex::new(HashMap::new()),
            max_bytes,
        };
        Ok(OutputSink { files: Some(Arc::new(files)), echo, masks })
    }

    /// A sink for a child that keeps its own log files (nginx): lines are only echoed, in dev.
    pub fn echo_only(echo: bool) -> OutputSink {
        OutputSink { files: None, echo, masks: Masks::default() }
    }

    pub fn line(&self, prefix: &str, line: &str) {
        let text = self.masks.apply(format!("[{prefix}] {line}\n"));
        if let Some(files) = &self.files {
            if let Ok(mut combined) = files.combined.lock() {
                let _ = combined.write(text.as_bytes());
            }
            if let Ok(mut per_process) = files.per_process.lock() {
                if !per_process.contains_key(prefix) {
                    let path = files.per_process_dir.join(logfile::file_name(prefix));
                    match RotatingFile::open(&path, files.max_bytes) {
                        Ok(file) => {
                            per_process.insert(prefix.to_string(), file);
                        }
                        Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot open a process log"),
                    }
                }
                if let Some(file) = per_process.get_mut(prefix) {
                    let _ = file.write(text.as_bytes());
                }
            }
        }
        if self.echo {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }

    /// Drains `reader` until EOF, one prefixed line at a time.
    pub async fn drain<R: AsyncRead + Unpin>(self, prefix: String, mut reader: R) {
        let mut buf = vec![0u8; 8192];
        let mut line: Vec<u8> = Vec::with_capacity(256);
        let mut dropped = 0usize;
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &byte in &buf[..n] {
                if byte == b'\n' {
                    self.emit(&prefix, &line, dropped);
                    line.clear();
                    dropped = 0;
                } else if line.len() < MAX_LINE {
                    line.push(byte);
                } else {
                    dropped += 1;
                }
            }
        }
        if !line.is_empty() {
            self.emit(&prefix, &line, dropped);
        }
    }

    fn emit(&self, prefix: &str, raw: &[u8], dropped: usize) {
        let mut text = sanitize(raw);
        if dropped > 0 {
            text.push_str(&format!(" …[{dropped} bytes truncated]"));
        }
        self.line(prefix, &text);
    }
}

/// Invalid UTF-8 becomes U+FFFD; control characters (ANSI escapes included) become visible `\x1b`-style text, so a
/// handler cannot rewrite the operator's terminal.
pub fn sanitize(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invalid_utf8_are_neutralised() {
        assert_eq!(sanitize(b"\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(sanitize(b"ok\xffok\r"), "ok\u{fffd}ok");
    }

    #[tokio::test]
    async fn long_lines_are_truncated_and_marked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.log");
        let masks = Masks::default();
        masks.set(crate::secrets::mask_set(["hunter22"].into_iter()));
        let sink = OutputSink::open(&path, &dir.path().join("processes"), 1 << 20, false, masks).expect("open");
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(b"\nsecond hunter22\nlast-no-newline");
        sink.drain("fn:x".into(), &input[..]).await;
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("…[10 bytes truncated]"));
        assert_eq!(lines[1], "[fn:x] second <hidden>", "secrets are masked");
        assert_eq!(lines[2], "[fn:x] last-no-newline");
        let own = std::fs::read_to_string(dir.path().join("processes/fn_x.log")).expect("the process's own log");
        assert_eq!(own, text, "the same lines, in the process's own file");
    }
}
