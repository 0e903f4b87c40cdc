//! Secrets in the config: the redacting [`Secret`] type, a secret given inline, through the
//! environment or in a file (exactly one), the API token's own checks, and which files hold a
//! secret in clear (checked for other readers at start and at each reload).

use super::error::{ConfigError, err};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string (the Okta API token). Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret given in one of three keys under `parent`: `<stem>` (the value), `<stem>_env` (a
/// variable holding it) or `<stem>_file` (a file holding it); exactly one. `what` names it in
/// the message when none is set. The value comes back trimmed.
pub(super) fn resolve_secret(
    parent: &str,
    stem: &str,
    what: &str,
    inline: Option<&Secret>,
    env: Option<&str>,
    file: Option<&Path>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Secret, ConfigError> {
    let value = match (inline, env, file) {
        (Some(t), None, None) => t.expose().to_string(),
        (None, Some(var), None) => std::env::var(var).map_err(|_| {
            ConfigError(format!(
                "{parent}.{stem}_env: the environment variable {var} is not set"
            ))
        })?,
        (None, None, Some(file)) => {
            let p = resolve(file);
            std::fs::read_to_string(&p).map_err(|e| {
                ConfigError(format!(
                    "{parent}.{stem}_file: cannot read {}: {e}",
                    p.display()
                ))
            })?
        }
        (None, None, None) => {
            return err(format!(
                "{parent}: no {what}; set one of {stem}, {stem}_env or {stem}_file"
            ));
        }
        _ => {
            return err(format!(
                "{parent}: set only one of {stem}, {stem}_env and {stem}_file"
            ));
        }
    };
    Ok(Secret::new(value.trim().to_string()))
}
