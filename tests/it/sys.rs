//! The system calls only the tests make, kept out of the product binary: a reset on close
//! (`SO_LINGER` with a zero timeout) for a receiver that drops a connection as a restarting
//! load balancer does, and `setns` to put a receiver behind a link a test can cut.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// Makes closing `s` send a reset (RST) instead of a FIN, discarding anything unsent or unread.
pub fn reset_on_close(s: &std::net::TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a valid pointer to `l`.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Moves the calling thread into the network namespace at `path` (`/var/run/netns/<name>`):
/// sockets it creates from then on live there.
///
/// # Errors
/// If the file cannot be opened or `setns` fails (it needs CAP_SYS_ADMIN).
pub fn enter_netns(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: setns takes an open namespace fd (owned by `f` for the call) and a flag.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
