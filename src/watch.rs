//! The config watcher: watches the config file's *folder* (editors replace the file, and a
//! Kubernetes ConfigMap swaps a `..data` symlink), debounces about 500 ms, and reports each new
//! version of the file's text. Validation is the caller's job.

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the folder must be quiet before the file is read again.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// A running watcher; dropping it stops watching.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    events: async_channel::Receiver<()>,
    path: PathBuf,
    last: String,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ConfigWatcher {
    /// Starts watching the folder of `path`, whose current text is `current`.
    ///
    /// # Errors
    /// A message if the folder cannot be watched (e.g. the inotify watch limit).
    pub fn start(path: &Path, current: String) -> Result<ConfigWatcher, String> {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tx, rx) = async_channel::unbounded();
        let early = tx.clone();
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        // Only events about the file itself or a ConfigMap's `..data` swap: the folder may hold
        // busy files (logs) whose events must not keep postponing the reload.
        let relevant = move |p: &Path| {
            p.file_name()
                .is_some_and(|n| n == name || n.as_encoded_bytes().starts_with(b".."))
        };
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && ev.paths.iter().any(|p| relevant(p))
            {
                let _ = tx.send_blocking(());
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        watcher
            .watch(&folder, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        // A change between loading `current` and the watch starting has no event: look once.
        if std::fs::read_to_string(path).ok().as_deref() != Some(current.as_str()) {
            let _ = early.send_blocking(());
        }
        Ok(ConfigWatcher {
            _watcher: watcher,
            events: rx,
            path: path.to_path_buf(),
            last: current,
        })
    }

    /// Waits for the file's text to change (after the folder has been quiet for [`DEBOUNCE`])
    /// and returns the new text. A file that cannot be read (mid-swap, deleted) is logged and
    /// waited out.
    pub async fn changed(&mut self) -> String {
        loop {
            if self.events.recv().await.is_err() {
                // The watcher thread is gone: nothing more will come.
                std::future::pending::<()>().await;
            }
            // Debounce: wait until no event came for DEBOUNCE (at most 4 × DEBOUNCE).
            let first = std::time::Instant::now();
            while first.elapsed() < DEBOUNCE * 4 {
                if crate::time::timeout(DEBOUNCE, self.events.recv())
                    .await
                    .is_none()
                {
                    break;
                }
            }
            match std::fs::read_to_string(&self.path) {
                Ok(text) if text != self.last => {
                    self.last = text.clone();
                    return text;
                }
                Ok(_) => {}
                Err(e) => log::warn!(
                    "The config file {} cannot be read after a change ({e}); still running on the previous config.",
                    self.path.display()
                ),
            }
        }
    }
}
