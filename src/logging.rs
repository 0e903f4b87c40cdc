//! Log output: one line per record, `2024-12-04T17:16:01.224    INFO message`, in the seed
//! collector's shape so existing log searches keep working; or one JSON object per line for
//! log pipelines. To stderr, or to a file rotated by size.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where and how log lines go (`globals.log_file`, `log_max_bytes`, `log_keep`, `log_format`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// A file instead of stderr.
    pub file: Option<PathBuf>,
    /// Size at which the file is rotated (`file` → `file.1` → … `file.<keep>`).
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// One JSON object per line instead of the seed's text lines.
    pub json: bool,
}

/// Opens `path` as `run` opens its log file (appending, created 0600, never through a link),
/// and closes it again: what `validate` checks.
///
/// # Errors
/// Why it cannot be opened.
pub fn check_file(path: &Path) -> std::io::Result<()> {
    Rotating::open(path, 0, 0).map(drop)
}

/// Installs the logger on stderr at `level`. Later calls are ignored; use [`set_level`] to
/// change the level.
pub fn init(level: log::LevelFilter) {
    let _ = init_with(level, &Options::default());
}

/// Installs the logger at `level` with `opts`.
///
/// # Errors
/// A message naming the log file if it cannot be opened.
pub fn init_with(level: log::LevelFilter, opts: &Options) -> Result<(), String> {
    let json = opts.json;
    let local = fern::Dispatch::new()
        // The configured level is the local log's; self-monitoring may need more of the
        // records (the statistics lines) than the local log shows.
        .filter(|m| m.level() <= local_level())
        .format(move |out, message, record| {
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            let text = message.to_string();
            if record.level() <= log::Level::Warn {
                crate::errors::count_in(&text);
            }
            if json {
                // serde_json escapes every control character.
                let line = serde_json::json!({
                    "time": now,
                    "level": record.level().as_str(),
                    "message": text,
                });
                out.finish(format_args!("{line}"))
            } else {
                // One record, one line: text from a peer (Okta's errorSummary, a header)
                // cannot forge another.
                out.finish(format_args!(
                    "{} {:>7} {}",
                    now.trim_end_matches('Z'),
                    record.level(),
                    escape_controls(&text)
                ))
            }
        });
    let local = match &opts.file {
        None => local.chain(std::io::stderr()),
        Some(path) => {
            let w = Rotating::open(path, opts.max_bytes, opts.keep)
                .map_err(|e| format!("globals.log_file: cannot open {}: {e}", path.display()))?;
            local.chain(Box::new(w) as Box<dyn Write + Send>)
        }
    };
    let dispatch = fern::Dispatch::new()
        // Library chatter (rustls, ureq, notify, async-io...): warnings and errors only. At
        // `trace`, notify logs every inotify event, and a log file in the config's folder
        // would feed the watcher its own lines without end.
        .level(log::LevelFilter::Warn)
        .level_for("okta_collector", log::LevelFilter::Trace)
        .level_for("spool", log::LevelFilter::Trace)
        .chain(local)
        .chain(fern::Output::call(crate::selfmon::capture));
    if dispatch.apply().is_ok() {
        set_level(level);
    }
    Ok(())
}

/// The local log's level (`globals.log_level`), as a number (`log::LevelFilter as usize`).
static LOCAL_LEVEL: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(log::LevelFilter::Info as usize);

fn local_level() -> log::LevelFilter {
    match LOCAL_LEVEL.load(std::sync::atomic::Ordering::Relaxed) {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// `text` with its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`, …), borrowed
/// when it has none.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Changes the level of the installed logger (a config reload): the local log's, and what
/// is logged at all (at least `info` while self-monitoring takes the statistics lines).
pub fn set_level(level: log::LevelFilter) {
    LOCAL_LEVEL.store(level as usize, std::sync::atomic::Ordering::Relaxed);
    let needed = if crate::selfmon::enabled() {
        level.max(log::LevelFilter::Info)
    } else {
        level
    };
    log::set_max_level(needed);
}

/// A log file that rotates itself by size: `file` → `file.1` → … → `file.<keep>` (dropped).
#[derive(Debug)]
struct Rotating {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    max: u64,
    keep: u32,
    /// The last write ended a line: a rotation now never splits one.
    at_line_start: bool,
}

impl Rotating {
    fn open(path: &Path, max: u64, keep: u32) -> std::io::Result<Rotating> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            // Only the collector's user reads its log (0600), and a symlink planted in its
            // place is not followed.
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Rotating {
            path: path.to_path_buf(),
            file,
            len,
            max: max.max(4096),
            keep,
            at_line_start: true,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.path, self.rotated(1))?;
            *self = Rotating::open(&self.path.clone(), self.max, self.keep)?;
        }
        self.len = 0;
        Ok(())
    }
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.at_line_start && self.len > 0 && self.len + buf.len() as u64 > self.max {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.len += n as u64;
        self.at_line_start = buf[..n].ends_with(b"\n");
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_so_a_peer_cannot_forge_a_line() {
        let forged = "Okta says: bad\n2026-12-02T10:00:00.000   ERROR forged\r\u{1b}[31m";
        let e = escape_controls(forged);
        assert!(!e.chars().any(char::is_control), "{e}");
        assert_eq!(
            e,
            "Okta says: bad\\n2026-12-02T10:00:00.000   ERROR forged\\r\\u{1b}[31m"
        );
        assert!(matches!(
            escape_controls("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("okc.log");
        let mut w = Rotating::open(&p, 4096, 2).unwrap();
        let mut line = vec![b'x'; 999];
        line.push(b'\n');
        for _ in 0..20 {
            // fern writes a record and its newline separately: never split between files.
            w.write_all(&line[..999]).unwrap();
            w.write_all(b"\n").unwrap();
        }
        for f in ["okc.log", "okc.log.1", "okc.log.2"] {
            let text = std::fs::read(dir.path().join(f)).unwrap();
            assert!(text.len().is_multiple_of(1000), "{f} holds whole lines");
        }
        assert!(std::fs::metadata(&p).unwrap().len() <= 4096);
        assert!(
            std::fs::metadata(dir.path().join("okc.log.1"))
                .unwrap()
                .len()
                <= 4096
        );
        assert!(dir.path().join("okc.log.2").exists());
        assert!(!dir.path().join("okc.log.3").exists(), "only 2 kept");
    }
}
