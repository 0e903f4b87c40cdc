//! The two Linux socket calls std does not offer: the send-queue length (`SIOCOUTQ`) and
//! `TCP_USER_TIMEOUT`. The only `unsafe` code of the binary lives here.
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
