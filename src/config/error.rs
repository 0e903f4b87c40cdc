//! What every resolving step shares: the error type whose message names the file, the key
//! and the fix, and the context that makes a relative path absolute and a message start with
//! `<file>: <key>`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration error, with a message that names the key or file and how to fix it.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Where the file is, for the resolving stage: relative paths resolve against its folder, and
/// every message names the file and the key.
pub(crate) struct Cx<'a> {
    pub(super) path: &'a Path,
    pub(super) folder: PathBuf,
}

impl Cx<'_> {
    /// `p`, absolute: relative to the config's folder.
    pub(super) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.folder.join(p)
        }
    }

    /// `<file>: <key>`, the start of a message about `key`.
    pub(super) fn at(&self, key: &str) -> String {
        format!("{}: {key}", self.path.display())
    }
}
