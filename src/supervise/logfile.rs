//! Log files that rotate by size: `name.log` grows to a limit, then becomes `name.log.1` (the older ones shift to
//! `.2`, `.3`, and the oldest is dropped). A long-running `fastfn run` never fills the disk with worker output.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Rotated files kept next to the live one.
pub const KEEP: u32 = 3;
/// Default size at which a log file rotates (`FN_LOG_MAX_BYTES`).
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max: u64) -> std::io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile { path: path.to_path_buf(), file, size, max: max.max(1) })
    }

    /// Appends `bytes`, rotating first when they would take the file past its limit. A failed rotation keeps
    /// writing to the current file: losing the log is worse than an oversized one.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max {
            if let Err(e) = self.rotate() {
                tracing::debug!(path = %self.path.display(), error = %e, "log rotation failed; writing on");
            }
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        shift(&self.path)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Moves `path` to `path.1`, shifting the older rotations up and dropping the oldest. Whoever writes `path` must
/// reopen it (nginx does on SIGUSR1).
pub fn shift(path: &Path) -> std::io::Result<()> {
    for n in (1..KEEP).rev() {
        let from = numbered(path, n);
        if from.exists() {
            std::fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    std::fs::rename(path, numbered(path, 1))
}

/// `shift` for a log another process writes: the new empty file is created with the old one's owner and mode, so
/// that writer (nginx's unprivileged workers) can reopen it.
pub fn shift_keeping_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path)?;
    shift(path)?;
    let file = open_append(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o777))?;
    std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
}

/// Whether a log another process writes has outgrown `max` and should be shifted.
pub fn outgrown(path: &Path, max: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > max)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// A file name for a process's own log: its name with anything but `[A-Za-z0-9._-]` turned into `_`.
pub fn file_name(process: &str) -> String {
    let safe: String = process.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    format!("{}.log", safe.trim_start_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.log");
        let mut log = RotatingFile::open(&path, 10).expect("open");
        for i in 0..6 {
            log.write(format!("line {i}..\n").as_bytes()).expect("write"); // 9 bytes: one line per file
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(path.clone()), "line 5..\n");
        assert_eq!(read(numbered(&path, 1)), "line 4..\n");
        assert_eq!(read(numbered(&path, 3)), "line 2..\n");
        assert!(!numbered(&path, 4).exists(), "older files are dropped");
    }

    #[test]
    fn reopening_counts_the_existing_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.log");
        std::fs::write(&path, "0123456789").expect("seed");
        let mut log = RotatingFile::open(&path, 12).expect("open");
        log.write(b"abc").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "abc");
        assert_eq!(std::fs::read_to_string(numbered(&path, 1)).expect("read"), "0123456789");
    }

    #[test]
    fn process_names_make_safe_file_names() {
        assert_eq!(file_name("fn:api/users/get.[id].py"), "fn_api_users_get._id_.py.log");
        assert_eq!(file_name("../x"), "_x.log");
    }
}
