//! Hot reload (DESIGN decision 9): a watcher over the functions folder, debounced as a batch window, ignoring editor
//! and dependency noise; each batch re-runs discovery and swaps the catalog (`Instance::reload`), which restarts only
//! the workers whose function changed. An invalid edit keeps the last good version serving.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::supervise::instance::Instance;

/// Events arriving within this window after the first are handled as one batch. An editor's save (temp file, rename)
/// takes a few milliseconds; a longer burst (a `git checkout`) simply makes a second reload. Kept short because it
/// adds directly to the write-to-new-answer time, on top of nginx's ~100 ms worker swap.
pub const DEBOUNCE: Duration = Duration::from_millis(80);

/// Folder names whose changes never matter (besides names starting with `.`).
const IGNORED_DIRS: &[&str] = &["node_modules", "__pycache__", "vendor", "target"];

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch `{}`: the inotify watch limit is reached", .0.display())]
    TooManyWatches(PathBuf),
    #[error("cannot watch `{}`: too many open files", .0.display())]
    TooManyFiles(PathBuf),
    #[error("cannot watch `{}`: {source}", path.display())]
    Other { path: PathBuf, source: notify::Error },
}

impl WatchError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            WatchError::TooManyWatches(_) => Some("raise it: sysctl fs.inotify.max_user_watches=524288"),
            WatchError::TooManyFiles(_) => Some("raise the open-files limit (ulimit -n, or LimitNOFILE= in the unit)"),
            WatchError::Other { .. } => None,
        }
    }
}

/// Whether a changed path is noise: dotfiles and dot-folders (`.git`, editor swap files), `#…#` autosaves, `~`
/// backups, compiled Python, dependency folders.
pub fn is_noise(root: &Path, path: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut parts = rel.components().filter_map(|c| match c {
        Component::Normal(part) => part.to_str(),
        _ => None,
    });
    let noisy_part = |part: &str| part.starts_with('.') || IGNORED_DIRS.contains(&part);
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    parts.any(noisy_part)
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".pyc")
        || name.ends_with(".pyo")
        || name.ends_with(".swp")
}

/// How often the folder itself is checked: a deleted and recreated folder is a new inode, which the inotify watch on
/// the old one never reports.
const FOLDER_CHECK: Duration = Duration::from_secs(1);

/// A running watcher; dropping it stops watching.
pub struct FolderWatch {
    _watcher: Arc<std::sync::Mutex<notify::RecommendedWatcher>>,
    follow: tokio::task::JoinHandle<()>,
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.follow.abort();
    }
}

/// The folder's identity (device, inode), or None while it does not exist.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// Starts watching `root`; changes trigger reloads until the returned watcher is dropped.
pub fn start(root: &Path, instance: Arc<Instance>) -> Result<FolderWatch, WatchError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let tx_for_follow = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watcher error"),
    })
    .map_err(|source| classify(root, source))?;
    watcher.watch(root, RecursiveMode::Recursive).map_err(|source| classify(root, source))?;
    let watcher = Arc::new(std::sync::Mutex::new(watcher));

    // The folder deleted (a deploy that replaces it, `rm -rf` and a fresh checkout): the last good version keeps
    // serving; once a folder is back at the path, it is watched again and reloaded.
    let follow = {
        let (root, watcher, tx) = (root.to_path_buf(), Arc::clone(&watcher), tx_for_follow);
        tokio::spawn(async move {
            let mut current = identity(&root);
            loop {
                tokio::time::sleep(FOLDER_CHECK).await;
                let now = identity(&root);
                if now == current {
                    continue;
                }
                match now {
                    None => tracing::warn!("the functions folder {} is gone; the last good version keeps serving until it is back", root.display()),
                    Some(_) => {
                        let rewatched = watcher.lock().map_err(|_| "watcher lock poisoned".to_string()).and_then(|mut w| {
                            let _ = w.unwatch(&root);
                            w.watch(&root, RecursiveMode::Recursive).map_err(|e| classify(&root, e).to_string())
                        });
                        match rewatched {
                            Ok(()) => tracing::info!("the functions folder {} is back; watching it again", root.display()),
                            Err(why) => tracing::warn!("the functions folder {} is back but cannot be watched: {why}", root.display()),
                        }
                        let _ = tx.send(root.clone());
                    }
                }
                current = now;
            }
        })
    };

    let root = root.to_path_buf();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // A batch: everything that arrives within the window after the first event.
            let mut changed = vec![first];
            let window = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(window);
            loop {
                tokio::select! {
                    _ = &mut window => break,
                    next = rx.recv() => match next {
                        Some(path) => changed.push(path),
                        None => return,
                    },
                }
            }
            changed.retain(|p| !is_noise(&root, p));
            if changed.is_empty() {
                continue;
            }
            changed.sort();
            changed.dedup();
            let shown: Vec<String> = changed.iter().take(5).map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string()).collect();
            let more = if changed.len() > 5 { format!(" and {} more", changed.len() - 5) } else { String::new() };
            match instance.reload().await {
                Ok(summary) => tracing::info!(
                    "reloaded after changes to {}{more}: {} function(s), {} route(s)",
                    shown.join(", "),
                    summary["functions"],
                    summary["routes"]
                ),
                Err(why) => tracing::warn!("changes to {}{more} not applied; the last good version keeps serving: {why}", shown.join(", ")),
            }
        }
    });
    Ok(FolderWatch { _watcher: watcher, follow })
}

fn classify(root: &Path, source: notify::Error) -> WatchError {
    let errno = match &source.kind {
        notify::ErrorKind::Io(io) => io.raw_os_error(),
        notify::ErrorKind::MaxFilesWatch => Some(libc::ENOSPC),
        _ => None,
    };
    match errno {
        Some(libc::ENOSPC) => WatchError::TooManyWatches(root.to_path_buf()),
        Some(libc::EMFILE) => WatchError::TooManyFiles(root.to_path_buf()),
        _ => WatchError::Other { path: root.to_path_buf(), source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_and_dependency_noise_is_ignored() {
        let root = Path::new("/f");
        for noisy in ["/f/.git/index", "/f/a/.handler.py.swp", "/f/a/#handler.py#", "/f/a/handler.py~", "/f/a/__pycache__/x.pyc", "/f/a/node_modules/x/index.js", "/f/a/x.pyc"] {
            assert!(is_noise(root, Path::new(noisy)), "{noisy}");
        }
        for real in ["/f/a/handler.py", "/f/get.users.js", "/f/a/fn.config.json"] {
            assert!(!is_noise(root, Path::new(real)), "{real}");
        }
    }
}
