//! What an entitlement service knows Devo has been told, on disk: one small file per parent
//! (`<letter>_<id>`, e.g. `g_00g1abc`) listing its children's keys with a fingerprint of what
//! was sent, so the memory a service takes does not grow with the org (one parent at a time).
//!
//! A file is replaced whole (written 0600 without following links, `fsync`ed, renamed, the
//! folder `fsync`ed by [`Store::sync`]) only after the records it accounts for are durable in
//! the spool: a crash between the two re-sends a parent's records, never loses one. A file
//! that does not parse is set aside and its parent counts as unknown (its children are sent
//! again, present).

use super::shape::{ParentKind, safe_id};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The first line of every file (and its version).
const MAGIC: &str = "okc-known 1";
/// The most bytes a file is read up to: a parent with a million children at most.
const MAX_FILE: u64 = 128 << 20;

/// A child as sent: the fingerprint of its object, and a short note kept for the record of
/// its removal (an admin role's type, a factor's type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Child {
    pub fp: u64,
    pub note: String,
}

/// One parent's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Known {
    /// The full listing that last saw the parent (or, for one an event found, the listing
    /// that was current then): a listing ends by removing the parents it did not see.
    pub generation: u64,
    /// A group's `lastMembershipUpdated` last acted on (Unix ms; 0: none).
    pub lmu_ms: u64,
    /// The newest System Log event applied to the parent (`published`, Unix ms; 0: none).
    pub event_ms: u64,
    /// The parent's name, label or login, for the records of its children's removal.
    pub label: String,
    /// Children by key.
    pub children: BTreeMap<String, Child>,
}

/// The known store of one service: `<data_dir>/entitlements/<service>/`.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (made private by the caller).
    pub(crate) fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    fn path(&self, parent: ParentKind, id: &str) -> PathBuf {
        self.dir.join(format!("{}_{id}", parent.letter()))
    }

    /// The parent's file, if there is one that parses (one that does not is set aside as
    /// `<name>.bad` with an error line, and the parent counts as unknown).
    pub(crate) fn load(&self, parent: ParentKind, id: &str) -> io::Result<Option<Known>> {
        let path = self.path(parent, id);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut text = String::new();
        let read = file.take(MAX_FILE).read_to_string(&mut text);
        match read.ok().and_then(|_| parse(&text)) {
            Some(k) => Ok(Some(k)),
            None => {
                let mut bad = path.as_os_str().to_owned();
                bad.push(".bad");
                log::error!(
                    "The entitlement store file {} does not parse; it is set aside as {} and its parent's entitlements are sent again.",
                    path.display(),
                    PathBuf::from(&bad).display()
                );
                std::fs::rename(&path, &bad)?;
                Ok(None)
            }
        }
    }

    /// Replaces the parent's file with `known` (durable once [`Store::sync`] returns).
    pub(crate) fn save(&self, parent: ParentKind, id: &str, known: &Known) -> io::Result<()> {
        replace_synced(&self.path(parent, id), render(known).as_bytes())
    }

    /// Removes the parent's file.
    pub(crate) fn remove(&self, parent: ParentKind, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(parent, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Makes the renames and removals durable (`fsync` of the folder).
    pub(crate) fn sync(&self) -> io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Every parent with a file, in name order (leftover `.tmp` files are removed).
    pub(crate) fn parents(&self) -> io::Result<Vec<(ParentKind, String)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(self.dir.join(name));
                continue;
            }
            let mut chars = name.chars();
            let (Some(letter), Some('_')) = (chars.next(), chars.next()) else {
                continue;
            };
            let id = chars.as_str();
            if let Some(kind) = ParentKind::from_letter(letter)
                && safe_id(id)
            {
                out.push((kind, id.to_string()));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Replaces `path` with `bytes`: written to `<path>.tmp` (0600, `O_NOFOLLOW`: a planted link
/// is not followed), `fsync`ed, renamed over `path`. The rename is durable once the folder is
/// `fsync`ed.
pub(crate) fn replace_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let mut w = io::BufWriter::new(&mut f);
    w.write_all(bytes)?;
    w.flush()?;
    drop(w);
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

fn render(k: &Known) -> String {
    let mut s = String::with_capacity(64 + k.children.len() * 48);
    s.push_str(&format!(
        "{MAGIC} gen={} lmu={} ev={} label={}\n",
        k.generation,
        k.lmu_ms,
        k.event_ms,
        serde_json::Value::from(k.label.as_str())
    ));
    for (key, c) in &k.children {
        s.push_str(&format!("{key} {:016x} {}\n", c.fp, c.note));
    }
    s
}

fn parse(text: &str) -> Option<Known> {
    let mut lines = text.lines();
    let head = lines.next()?.strip_prefix(MAGIC)?.trim_start();
    let (nums, label) = head.split_once(" label=")?;
    let mut k = Known {
        label: serde_json::from_str::<String>(label).ok()?,
        ..Known::default()
    };
    for part in nums.split(' ') {
        let (name, v) = part.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match name {
            "gen" => k.generation = v,
            "lmu" => k.lmu_ms = v,
            "ev" => k.event_ms = v,
            _ => return None,
        }
    }
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let (key, fp, note) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
        // Checked by bytes: an edited file's key may hold any character.
        if key.as_bytes().get(1) != Some(&b':') || !key.get(2..).is_some_and(safe_id) {
            return None;
        }
        let fp = u64::from_str_radix(fp, 16).ok()?;
        k.children.insert(
            key.to_string(),
            Child {
                fp,
                note: note.to_string(),
            },
        );
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_a_damaged_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        let mut k = Known {
            generation: 3,
            lmu_ms: 1_700_000_000_000,
            event_ms: 5,
            label: "Finance \"Admins\" ünï".into(),
            ..Known::default()
        };
        k.children.insert(
            "r:ra1".into(),
            Child {
                fp: 7,
                note: "SUPER_ADMIN".into(),
            },
        );
        k.children.insert(
            "u:00u2".into(),
            Child {
                fp: u64::MAX,
                note: String::new(),
            },
        );
        store.save(ParentKind::Group, "00g1", &k).unwrap();
        store.sync().unwrap();
        assert_eq!(store.load(ParentKind::Group, "00g1").unwrap(), Some(k));
        assert_eq!(store.load(ParentKind::User, "00g1").unwrap(), None);
        assert_eq!(
            store.parents().unwrap(),
            vec![(ParentKind::Group, "00g1".to_string())]
        );
        // A torn or edited file: set aside, the parent unknown, nothing panics.
        std::fs::write(dir.path().join("g_00g1"), "okc-known 1 gen=x").unwrap();
        assert_eq!(store.load(ParentKind::Group, "00g1").unwrap(), None);
        assert!(dir.path().join("g_00g1.bad").exists());
        std::fs::write(
            dir.path().join("g_00g2"),
            "okc-known 1 gen=1 lmu=0 ev=0 label=\"\"\nu:../../x 00 \n",
        )
        .unwrap();
        assert_eq!(store.load(ParentKind::Group, "00g2").unwrap(), None);
        // A multi-byte character where the key's id starts: refused, no panic.
        std::fs::write(
            dir.path().join("g_00g3"),
            "okc-known 1 gen=1 lmu=0 ev=0 label=\"\"\n€x 00 \n",
        )
        .unwrap();
        assert_eq!(store.load(ParentKind::Group, "00g3").unwrap(), None);
        store.remove(ParentKind::Group, "00g1").unwrap();
        assert!(store.parents().unwrap().is_empty());
    }

    #[test]
    fn a_planted_link_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("g_00g1.tmp")).unwrap();
        let store = Store::new(dir.path().to_path_buf());
        store
            .save(ParentKind::Group, "00g1", &Known::default())
            .unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
