//! When a read's bytes reached this machine: the kernel's receive timestamp.
//!
//! A stream's chunk is stamped when its bytes arrive, not when the client gets round to
//! reading them. On Linux the direct HTTP/1.1 reader asks the kernel to timestamp every
//! segment as it is received (`SO_TIMESTAMPNS`) and reads with `recvmsg`, which hands back
//! the receive time of the *last* segment the read took. A read that waited for its socket
//! gets the instant its one segment arrived; a read that found several segments queued (the
//! client was busy with other streams) gets the latest arrival among them, never an earlier
//! one. So a stamp is never before its bytes arrived, and never after the read returned: a
//! client busy with other sockets no longer adds its own delay to the next socket's stamps.
//!
//! The kernel's stamp is wall-clock time (`CLOCK_REALTIME`); it becomes an [`Instant`] as
//! the read's return instant less the stamp's age, both clocks read right after the read.
//! The result is kept between the connection's previous stamp (or the request's sending)
//! and the read's return, so a wall clock stepped while bytes waited cannot put a stamp out
//! of order. Where the kernel gives no stamp (another OS, or the option refused), the stamp
//! is the read's return.

use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::net::TcpStream;

/// Asks the kernel to timestamp what `stream` receives. Best effort: without it, reads are
/// stamped as they return.
pub fn enable(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and an option value of its declared size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// Reads what `stream` has ready into `buf`'s spare capacity (waiting for it when nothing
/// is; `waited` is set then): the bytes read (0 at the connection's end) and when they
/// arrived, no earlier than `floor` (the connection's previous stamp, or the request's
/// sending).
pub async fn read(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    floor: Instant,
    waited: &mut bool,
) -> io::Result<(usize, Instant)> {
    std::future::poll_fn(|cx| poll_read(stream, buf, floor, waited, cx)).await
}

/// [`read`] as a poll.
pub(crate) fn poll_read(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    floor: Instant,
    waited: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(usize, Instant)>> {
    loop {
        match stream.poll_read_ready(cx) {
            Poll::Pending => {
                *waited = true;
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let room = buf.capacity() - buf.len();
        let mut received = None;
        let attempt = stream.try_io(tokio::io::Interest::READABLE, || {
            let (n, kernel) = receive(stream, buf)?;
            received = Some((n, kernel));
            // A short read emptied the socket: saying "would block" makes tokio clear the
            // readiness (as its own `poll_read` does), so the next read waits for the next
            // segment instead of first failing a `recvmsg`.
            if n > 0 && n < room {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        if let Some((n, kernel)) = received {
            let returned = Instant::now();
            let at = kernel
                .and_then(|arrival| arrival.instant(returned))
                .map_or(returned, |at| at.clamp(floor.min(returned), returned));
            return Poll::Ready(Ok((n, at)));
        }
        // Nothing was received: an error, or readiness that was stale (tokio cleared it, so
        // the loop waits again).
        if let Err(e) = attempt
            && e.kind() != io::ErrorKind::WouldBlock
        {
            return Poll::Ready(Err(e));
        }
    }
}

/// A kernel receive timestamp: wall-clock time since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WallStamp(std::time::Duration);

impl WallStamp {
    /// The instant this stamp names, given `returned`, the instant the read returned: that
    /// instant less the stamp's age on the wall clock read now (none when the wall clock is
    /// before the epoch). A stamp ahead of the wall clock has age zero.
    fn instant(self, returned: Instant) -> Option<Instant> {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let age = wall.saturating_sub(self.0);
        Some(returned.checked_sub(age).unwrap_or(returned))
    }
}

/// One `recvmsg` into `buf`'s spare capacity: the bytes read and, when the kernel gave one,
/// the receive time of the last segment read.
#[cfg(target_os = "linux")]
fn receive(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<(usize, Option<WallStamp>)> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // Room for one `timespec` control message, aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero `msghdr` is valid (no name, no buffers).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = size_of_val(&control) as _;
    // The system call itself, not libc's `recvmsg`: that wrapper is a thread-cancellation
    // point, and its bookkeeping costs the hot path for nothing here.
    // SAFETY: the descriptor is the stream's; the message points at live buffers of the
    // stated lengths, the data buffer being the vector's spare capacity.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            stream.as_raw_fd(),
            &mut message as *mut libc::msghdr,
            libc::MSG_DONTWAIT,
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return Err(io::Error::last_os_error());
    };
    // SAFETY: the kernel wrote `n` bytes at the start of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    if message.msg_flags & libc::MSG_CTRUNC != 0 {
        return Ok((n, None));
    }
    let mut stamp = None;
    // SAFETY: the control buffer was filled by the kernel and `msg_controllen` says how much;
    // the CMSG macros walk it within that length, and a SCM_TIMESTAMPNS message holds one
    // `timespec` (read unaligned: the buffer's alignment is the header's).
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let spec: libc::timespec = libc::CMSG_DATA(header)
                    .cast::<libc::timespec>()
                    .read_unaligned();
                if let (Ok(secs), Ok(nanos)) =
                    (u64::try_from(spec.tv_sec), u32::try_from(spec.tv_nsec))
                    && nanos < 1_000_000_000
                {
                    stamp = Some(WallStamp(std::time::Duration::new(secs, nanos)));
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    Ok((n, stamp))
}

/// A plain read: no kernel stamp on this OS.
#[cfg(not(target_os = "linux"))]
fn receive(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<(usize, Option<WallStamp>)> {
    stream.try_read_buf(buf).map(|n| (n, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    /// The wall clock since the epoch and the monotonic clock, read together.
    fn clocks() -> (Duration, Instant) {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (wall, Instant::now())
    }

    #[test]
    fn a_stamp_ahead_of_the_wall_clock_is_the_read_s_return() {
        let (wall, returned) = clocks();
        let at = WallStamp(wall + Duration::from_secs(5))
            .instant(returned)
            .unwrap();
        assert_eq!(at, returned);
    }

    #[test]
    fn an_old_stamp_is_its_age_before_the_read_s_return() {
        let (wall, returned) = clocks();
        let at = WallStamp(wall - Duration::from_millis(40))
            .instant(returned)
            .unwrap();
        let age = returned.duration_since(at);
        assert!(
            age >= Duration::from_millis(40) && age < Duration::from_millis(60),
            "{age:?}"
        );
    }

    /// Bytes that waited in the socket while the client was busy are stamped when they
    /// arrived, not when they were read; a read taking two writes gets the later one's.
    #[tokio::test]
    async fn bytes_read_late_carry_their_arrival() {
        let (client, mut server) = pair().await;
        enable(&client);
        let floor = Instant::now();
        server.write_all(b"first").await.unwrap();
        let first_written = Instant::now();
        tokio::time::sleep(Duration::from_millis(30)).await;
        server.write_all(b"second").await.unwrap();
        let second_written = Instant::now();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut buf = Vec::with_capacity(64);
        let mut waited = false;
        let (n, at) = read(&client, &mut buf, floor, &mut waited).await.unwrap();
        let returned = Instant::now();
        assert_eq!(&buf[..n], b"firstsecond");
        assert!(!waited);
        if cfg!(target_os = "linux") {
            assert!(
                at > first_written,
                "stamped before the second write's bytes arrived"
            );
            assert!(
                at <= second_written + Duration::from_millis(5),
                "stamped {:?} after the second write, its read returned {:?} after it",
                at.duration_since(second_written),
                returned.duration_since(second_written)
            );
        } else {
            assert!(at >= second_written);
        }
    }

    /// A stamp is never before the floor it is given.
    #[tokio::test]
    async fn a_stamp_is_never_before_its_floor() {
        let (client, mut server) = pair().await;
        enable(&client);
        server.write_all(b"early").await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let floor = Instant::now();
        let mut buf = Vec::with_capacity(64);
        let (_, at) = read(&client, &mut buf, floor, &mut false).await.unwrap();
        assert!(at >= floor);
    }

    #[tokio::test]
    async fn a_read_that_waits_says_so_and_the_end_reads_zero() {
        let (client, server) = pair().await;
        enable(&client);
        let mut buf = Vec::with_capacity(64);
        let mut waited = false;
        let writer = tokio::spawn(async move {
            let mut server = server;
            tokio::time::sleep(Duration::from_millis(20)).await;
            server.write_all(b"x").await.unwrap();
            server
        });
        let (n, _) = read(&client, &mut buf, Instant::now(), &mut waited)
            .await
            .unwrap();
        assert_eq!((n, waited), (1, true));
        drop(writer.await.unwrap());
        let (n, _) = read(&client, &mut buf, Instant::now(), &mut false)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
