//! The crate's only unsafe code: SCM_RIGHTS fds wrapped as `OwnedFd` the moment they arrive.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Sends one datagram with `fds` attached (SCM_RIGHTS).
///
/// # Errors
/// The errno of `sendmsg(2)`.
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let iov = [IoSlice::new(bytes)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One received datagram.
pub struct Received {
    /// Bytes read into the buffer; 0 means the peer closed.
    pub len: usize,
    /// The fds that came with it, owned.
    pub fds: Vec<OwnedFd>,
    /// The datagram did not fit, or more fds came than asked for (MSG_TRUNC).
    pub truncated: bool,
    /// The kernel could not give us every fd that was sent (MSG_CTRUNC: typically this process
    /// ran out of fds, EMFILE); `fds` holds those that arrived.
    pub fds_lost: bool,
}

/// Receives one datagram into `buf`, with up to `max_fds` fds (close-on-exec).
///
/// # Errors
/// The errno of `recvmsg(2)` (EAGAIN on a non-blocking socket with nothing to read).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize) -> io::Result<Received> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]); // one more than any message carries
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these fds in our table for us; nothing else owns
            // them, so wrapping each once makes it closed exactly once.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC) || fds.len() > max_fds;
    let fds_lost = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    Ok(Received { len: msg.bytes, fds, truncated, fds_lost })
}
