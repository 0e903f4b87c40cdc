//! Secrets in the config: the redacting [`Secret`] type, a secret given inline, through the
//! environment or in a file (exactly one), the API token's own checks, and which files hold a
//! secret in clear (checked for other readers at start and at each reload).

use super::raw::RawCredentials;
use super::{Config, ConfigError, OutputKind, err};
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

pub(super) fn resolve_token(
    c: &RawCredentials,
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(&str) -> String,
) -> Result<Secret, ConfigError> {
    let key = at("inputs.okta.credentials");
    let token = resolve_secret(
        &key,
        "api_token",
        "API token",
        c.api_token.as_ref(),
        c.api_token_env.as_deref(),
        c.api_token_file.as_deref(),
        resolve,
    )?;
    let trimmed = token.expose();
    if trimmed.is_empty() {
        return err(format!("{key}: the API token is empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(format!(
            "{key}: the API token contains spaces or control characters; check that it was copied whole"
        ));
    }
    Ok(Secret::new(trimmed.to_string()))
}

impl Config {
    /// The files that hold a secret in clear, each with what it holds: the Okta API token's
    /// (the config itself, or `api_token_file`), each `devo_http` token's, each client key.
    pub fn secret_files(&self) -> Vec<(PathBuf, String)> {
        let mut out: Vec<(PathBuf, String)> = Vec::new();
        let mut add = |p: &Path, what: String| match out.iter_mut().find(|(q, _)| q == p) {
            Some((_, w)) => {
                w.push_str(" and ");
                w.push_str(&what);
            }
            None => out.push((p.to_path_buf(), what)),
        };
        if let Some(f) = &self.okta.token_file {
            add(f, "the Okta API token".into());
        }
        if let Some(f) = self
            .okta
            .oauth
            .as_ref()
            .and_then(|o| o.private_key_file.as_ref())
        {
            add(f, "the OAuth app's private key".into());
        }
        for o in &self.outputs {
            match &o.kind {
                OutputKind::Http(h) => {
                    if let Some(f) = &h.token_file {
                        add(f, format!("outputs.{}'s ingestion token", o.name));
                    }
                }
                OutputKind::Devo(d) => add(&d.key, format!("outputs.{}'s client key", o.name)),
                _ => {}
            }
        }
        out
    }

    /// A warning for each file holding a secret in clear that other users can read.
    pub fn secret_file_warnings(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        self.secret_files()
            .into_iter()
            .filter_map(|(f, what)| {
                let mode = std::fs::metadata(&f).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then(|| {
                    format!(
                        "{} holds {what} and can be read by other users (mode {mode:03o}); \
                         run `chmod 600 {}` (or pass a token through its _env setting).",
                        f.display(),
                        f.display()
                    )
                })
            })
            .collect()
    }
}
