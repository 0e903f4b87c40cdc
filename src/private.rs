//! The data_dir belongs to the collector alone: it and every folder under it that the
//! collector writes in must be owned by the process's user and writable by nobody else, or
//! another local user could swap a spool file, a LOCK or an ack file for a symlink and have the
//! collector write elsewhere. Folders are made 0700; an existing one keeps its mode only if it
//! is safe, else the collector refuses to start and says how to fix it.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) 0700 if missing, then checks that it is a directory (not a
/// symlink, unless `follow` for the configured data_dir itself, which may be a mount point
/// reached through one), owned by this process's user, and not group- or world-writable.
///
/// # Errors
/// A message naming the folder, what is wrong and the command that fixes it.
pub fn ensure(dir: &Path, follow: bool) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = if follow {
        std::fs::metadata(dir)
    } else {
        std::fs::symlink_metadata(dir)
    }
    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a folder (a symlink or a file): the collector writes only in folders of its own; remove it, or set globals.data_dir elsewhere",
            dir.display()
        ));
    }
    check(
        dir,
        meta.uid(),
        meta.permissions().mode(),
        crate::sys::euid(),
    )
}

/// The decision, apart from the file system: owner `uid` and `mode` of `dir` for a process
/// running as `euid`.
fn check(dir: &Path, uid: u32, mode: u32, euid: u32) -> Result<(), String> {
    if uid != euid {
        return Err(format!(
            "{} is owned by uid {uid}, not by this process's user (uid {euid}): another user could change what the collector writes there; run `chown -R {euid} {}` or set globals.data_dir to a folder of this user's",
            dir.display(),
            dir.display()
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by {} (mode {:04o}): another local user could replace the spool's files; run `chmod go-w {}` (0700 is what the collector creates)",
            dir.display(),
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_folder_of_this_user_that_nobody_else_can_write_passes() {
        let p = Path::new("/var/lib/okc");
        assert!(check(p, 1000, 0o700, 1000).is_ok());
        assert!(check(p, 1000, 0o755, 1000).is_ok());
        let e = check(p, 1000, 0o777, 1000).unwrap_err();
        assert!(
            e.contains("every user (mode 0777)") && e.contains("chmod go-w /var/lib/okc"),
            "{e}"
        );
        let e = check(p, 1000, 0o770, 1000).unwrap_err();
        assert!(e.contains("its group (mode 0770)"), "{e}");
        let e = check(p, 0, 0o700, 1000).unwrap_err();
        assert!(
            e.contains("owned by uid 0") && e.contains("chown -R 1000"),
            "{e}"
        );
    }

    #[test]
    fn a_symlink_is_refused_below_the_data_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        assert!(ensure(&d.path().join("link"), true).is_ok());
        let e = ensure(&d.path().join("link"), false).unwrap_err();
        assert!(e.contains("not a folder"), "{e}");
        let fresh = d.path().join("a/b");
        ensure(&fresh, false).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
