//! The Linux calls std does not offer: the send-queue length (`SIOCOUTQ`), `TCP_USER_TIMEOUT`
//! and a file system's free space (`statvfs`). The only `unsafe` code of the binary lives here.
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

/// Sets `TCP_USER_TIMEOUT`, so unacknowledged data to a vanished peer fails the connection
/// after `d` instead of the kernel's ~15 minutes. Best effort.
pub fn set_user_timeout(s: &impl AsRawFd, d: Duration) {
    let ms: libc::c_uint = d.as_millis().try_into().unwrap_or(libc::c_uint::MAX);
    // SAFETY: setsockopt reads `size_of::<c_uint>()` bytes from a valid pointer to `ms`.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &ms as *const libc::c_uint as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
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
