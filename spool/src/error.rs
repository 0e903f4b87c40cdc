//! The spool's error type: one enum, so a caller can tell a fatal failed `fdatasync` (stop and
//! recover from disk) from a write it may retry (ENOSPC) and from a spool held by another process.

use std::io;
use std::path::{Path, PathBuf};

/// Errors of the spool.
#[derive(Debug)]
pub enum Error {
    /// An I/O operation failed; `op` says which, `path` on what.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `fdatasync` failed. The kernel may have dropped the dirty pages, so retrying cannot be
    /// trusted: the spool refuses further writes and the process should exit and recover.
    Sync {
        /// The segment file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the spool's lock.
    Locked {
        /// The spool directory.
        path: PathBuf,
    },
    /// A batch is larger than [`Options::max_frame_bytes`].
    TooLarge {
        /// Encoded size of the batch.
        len: usize,
    },
}

impl Error {
    /// True for errors after which the spool cannot be written any more (restart to recover).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Sync { .. })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "cannot {op} {}: {source}", path.display()),
            Error::Sync { path, source } => write!(
                f,
                "fdatasync of {} failed: {source}; the spool stops accepting writes, restart to recover from disk",
                path.display()
            ),
            Error::Locked { path } => write!(
                f,
                "the spool {} is in use by another process (its LOCK file is held)",
                path.display()
            ),
            Error::TooLarge { len } => write!(f, "a batch of {len} bytes is over the frame limit"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Sync { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
