//! The Linux calls std does not offer: the send-queue length (`SIOCOUTQ`), `TCP_USER_TIMEOUT`
//! and a file system's free space (`statvfs`), malloc's arenas and trimming, core dumps. The
//! only `unsafe` code of the binary lives here; the tests' own (a reset on close, entering a
//! network namespace) is in `tests/it/sys.rs`, outside the product.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::time::Duration;

/// Bytes written to `s` that the peer has not acknowledged yet (sent or not), or `None`.
pub fn send_queue_len(s: &impl AsRawFd) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer, which is valid for
    // the duration of the call; the fd is owned by `s` and open.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r == 0 && n >= 0 {
        Some(n as u64)
    } else {
        None
    }
}

/// `setsockopt(level, name, value)` on `s`, best effort (the result is not checked).
fn set_option<T>(s: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: &T) {
    // SAFETY: setsockopt reads `size_of::<T>()` bytes from a valid pointer to `value`.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        );
    }
}

/// Caps glibc's malloc at one arena: every thread that allocates (the blocking pool's
/// included) would otherwise get an arena of its own that keeps its freed memory. Call it
/// before any thread starts. A no-op on other C libraries.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers; M_ARENA_MAX is a documented parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the allocator's free memory to the system (glibc `malloc_trim`); a no-op on other C
/// libraries. An idle collector holds on to the high-water mark of its last busy moment
/// otherwise.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and only works on the allocator's own state.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Sets `TCP_USER_TIMEOUT`, so unacknowledged data to a vanished peer fails the connection
/// after `d` instead of the kernel's ~15 minutes. Best effort.
pub fn set_user_timeout(s: &impl AsRawFd, d: Duration) {
    let ms: libc::c_uint = d.as_millis().try_into().unwrap_or(libc::c_uint::MAX);
    set_option(s, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &ms);
}

/// Bytes available to unprivileged users, and the size, of the file system holding `path`.
pub fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the
    // right type for the call's duration; it is read only if the call succeeded.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize;
    Some((
        st.f_bavail.saturating_mul(frsize),
        st.f_blocks.saturating_mul(frsize),
    ))
}

/// Keeps secrets out of core dumps: no core file (RLIMIT_CORE 0) and not dumpable
/// (`PR_SET_DUMPABLE` 0, which also keeps other users' debuggers and `/proc/<pid>/mem`
/// out). The API token and the Devo key live in this process's memory. Best effort.
pub fn no_core_dumps() {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes and setrlimit reads the struct we pass; prctl(PR_SET_DUMPABLE,
    // 0) takes integers. setrlimit only when the limit is not 0 already: the systemd unit
    // sets LimitCORE=0 and filters @resources (setrlimit) out.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_CORE, &mut now) != 0 || now.rlim_max != 0 {
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
        }
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// The process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}
