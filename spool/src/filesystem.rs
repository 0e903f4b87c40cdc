//! The spool's file operations behind one small interface, so that tests can inject what a
//! real disk does rarely (ENOSPC, EIO, short writes, a failed `fdatasync`, a crash after any
//! write) deterministically and without root, as Vector's disk buffer does with its
//! `Filesystem` trait. The product uses [`RealFs`]; [`FaultFs`] is the test double.
//!
//! Only the writes and syncs of segment and ack files go through it: they are where the
//! spool's durability rules are decided. Reads use the files directly.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

/// The file operations the spool's writer, ack files and recovery make.
pub trait Filesystem: Send + Sync + std::fmt::Debug + 'static {
    /// Writes `buf` at `offset`; returns how many bytes were written (a short write is legal).
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fdatasync`.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// Truncates (or extends) the file to `len`.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Creates a new file (mode 0600, failing if it exists), open for reading and writing.
    fn create_new(&self, path: &Path) -> io::Result<File>;
    /// `fsync` of a directory, so that a created or deleted entry survives a power loss.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Writes all of `buf` at `offset` through `fs`, looping over short writes.
pub(crate) fn write_all_at(
    fs: &dyn Filesystem,
    file: &File,
    mut buf: &[u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match fs.write_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl Filesystem for RealFs {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        file.write_at(buf, offset)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }
}

/// A fault [`FaultFs`] injects into one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The write fails with ENOSPC, writing nothing.
    NoSpace,
    /// The operation fails with EIO.
    Eio,
    /// The write writes only this many bytes (and says so); the caller must loop. `Short(0)`
    /// writes nothing, which the spool reports as a failed write.
    Short(usize),
    /// The write writes this many bytes of its buffer, then the process "dies": this and
    /// every later operation fails (see [`FaultFs::crashed`]), as if killed there.
    TornCrash(usize),
    /// The operation completes, then the process "dies".
    CrashAfter,
}

/// Which operation a fault is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`Filesystem::write_at`].
    Write,
    /// [`Filesystem::sync_data`].
    Sync,
    /// [`Filesystem::set_len`].
    SetLen,
    /// [`Filesystem::create_new`].
    Create,
    /// [`Filesystem::sync_dir`].
    SyncDir,
}

/// A file system for tests: the real one, with faults injected into chosen operations by
/// their number (counted per kind of operation, from 0), and a "crash" that makes every
/// operation after it fail, as a killed process makes none. What was written before the
/// crash stays in the files, as after kill -9; reopening the directory with [`RealFs`] is the
/// restart.
#[derive(Debug, Default)]
pub struct FaultFs {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    counts: [u64; 5],
    faults: Vec<(Op, u64, Fault)>,
    crashed: bool,
    /// Writes made so far, of any file.
    writes: u64,
}

fn index(op: Op) -> usize {
    match op {
        Op::Write => 0,
        Op::Sync => 1,
        Op::SetLen => 2,
        Op::Create => 3,
        Op::SyncDir => 4,
    }
}

fn crashed() -> io::Error {
    io::Error::other("the process crashed here (injected)")
}

impl FaultFs {
    /// A file system with no faults queued.
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// Injects `fault` into the `nth` (from 0) operation of kind `op`.
    pub fn inject(&self, op: Op, nth: u64, fault: Fault) {
        crate::lock(&self.state).faults.push((op, nth, fault));
    }

    /// Injects `fault` into the next operation of kind `op`.
    pub fn inject_next(&self, op: Op, fault: Fault) {
        let mut s = crate::lock(&self.state);
        let nth = s.counts[index(op)];
        s.faults.push((op, nth, fault));
    }

    /// True once an injected crash happened.
    pub fn crashed(&self) -> bool {
        crate::lock(&self.state).crashed
    }

    /// Operations of kind `op` made so far.
    pub fn count(&self, op: Op) -> u64 {
        crate::lock(&self.state).counts[index(op)]
    }

    /// Writes made so far (of any file).
    pub fn writes(&self) -> u64 {
        crate::lock(&self.state).writes
    }

    /// Counts the operation and returns the fault queued for it, or an error if crashed.
    fn next(&self, op: Op) -> io::Result<Option<Fault>> {
        let mut s = crate::lock(&self.state);
        if s.crashed {
            return Err(crashed());
        }
        let n = s.counts[index(op)];
        s.counts[index(op)] += 1;
        let at = s.faults.iter().position(|f| f.0 == op && f.1 == n);
        Ok(at.map(|i| s.faults.remove(i).2))
    }

    fn crash(&self) {
        crate::lock(&self.state).crashed = true;
    }

    /// Runs `done` for a non-write operation, applying `fault`.
    fn apply(&self, fault: Option<Fault>, done: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        match fault {
            None | Some(Fault::Short(_)) => done(),
            Some(Fault::NoSpace) => Err(io::Error::from_raw_os_error(28)),
            Some(Fault::Eio) => Err(io::Error::from_raw_os_error(5)),
            Some(Fault::TornCrash(_)) => {
                self.crash();
                Err(crashed())
            }
            Some(Fault::CrashAfter) => {
                let r = done();
                self.crash();
                r
            }
        }
    }
}

impl Filesystem for FaultFs {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        let fault = self.next(Op::Write)?;
        crate::lock(&self.state).writes += 1;
        match fault {
            None => file.write_at(buf, offset),
            Some(Fault::NoSpace) => Err(io::Error::from_raw_os_error(28)),
            Some(Fault::Eio) => Err(io::Error::from_raw_os_error(5)),
            Some(Fault::Short(n)) => file.write_at(&buf[..n.min(buf.len())], offset),
            Some(Fault::TornCrash(n)) => {
                let _ = RealFs.write_at(file, &buf[..n.min(buf.len())], offset);
                self.crash();
                Err(crashed())
            }
            Some(Fault::CrashAfter) => {
                let r = file.write_at(buf, offset);
                self.crash();
                r.and(Err(crashed()))
            }
        }
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        let fault = self.next(Op::Sync)?;
        self.apply(fault, || file.sync_data())
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        let fault = self.next(Op::SetLen)?;
        self.apply(fault, || file.set_len(len))
    }
    fn create_new(&self, path: &Path) -> io::Result<File> {
        let fault = self.next(Op::Create)?;
        let mut out = None;
        self.apply(fault, || {
            out = Some(RealFs.create_new(path)?);
            Ok(())
        })?;
        out.ok_or_else(crashed)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let fault = self.next(Op::SyncDir)?;
        self.apply(fault, || RealFs.sync_dir(dir))
    }
}
