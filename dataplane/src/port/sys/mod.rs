//! The only place in the dataplane with `unsafe`: system calls, the
//! AF_PACKET ring memory, the AF_XDP UMEM, rings and bpf(2), and the cycle
//! counter. Everything here is wrapped
//! in a safe API; every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use overlay::MacAddr;

mod packet;
mod xdp;

pub use packet::{PacketSocket, RingConfig, RxFrame, TxPush};
pub use xdp::{XdpConfig, XdpMode, XdpSocket, XdpStats};

/// A failed system call during setup: which step, and the OS error.
#[derive(Debug)]
pub struct OsError {
    /// The step that failed (e.g. "setsockopt(PACKET_RX_RING)").
    pub op: &'static str,
    /// The OS error.
    pub source: io::Error,
}

impl OsError {
    /// Captures errno right after a failed call.
    pub(crate) fn last(op: &'static str) -> OsError {
        OsError {
            op,
            source: io::Error::last_os_error(),
        }
    }
}

/// Index, MAC and MTU of one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfInfo {
    /// Kernel interface index.
    pub index: i32,
    /// Hardware address (zero for interfaces without one).
    pub mac: MacAddr,
    /// Link MTU.
    pub mtu: usize,
}

/// An `ifreq` with `name` filled in; `None` when the name does not fit.
fn ifreq_for(name: &str) -> Option<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return None;
    }
    // SAFETY: ifreq is a plain C struct (arrays and a union of plain
    // integers and sockaddrs) for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Some(req)
}

/// Reads index, MAC and MTU of interface `name` with ioctls on `sock`,
/// which answers for the network namespace `sock` was created in.
pub fn if_info(sock: RawFd, name: &str) -> Result<IfInfo, OsError> {
    let bad_name = || OsError {
        op: "interface name",
        source: io::Error::from(io::ErrorKind::InvalidInput),
    };
    let mut req = ifreq_for(name).ok_or_else(bad_name)?;
    // SAFETY: `req` is a valid, writable ifreq that outlives the call;
    // SIOCGIFINDEX reads ifr_name and writes ifr_ifindex inside it.
    if unsafe { libc::ioctl(sock, libc::SIOCGIFINDEX, &mut req) } < 0 {
        return Err(OsError::last("ioctl(SIOCGIFINDEX)"));
    }
    // SAFETY: the kernel just wrote the ifindex member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };

    let mut req = ifreq_for(name).ok_or_else(bad_name)?;
    // SAFETY: as above; SIOCGIFHWADDR writes ifr_hwaddr.
    if unsafe { libc::ioctl(sock, libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(OsError::last("ioctl(SIOCGIFHWADDR)"));
    }
    // SAFETY: the kernel just wrote the hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, &src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = src as u8;
    }

    let mut req = ifreq_for(name).ok_or_else(bad_name)?;
    // SAFETY: as above; SIOCGIFMTU writes ifr_mtu.
    if unsafe { libc::ioctl(sock, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(OsError::last("ioctl(SIOCGIFMTU)"));
    }
    // SAFETY: the kernel just wrote the mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(IfInfo {
        index,
        mac: MacAddr(mac),
        mtu: usize::try_from(mtu).unwrap_or(0),
    })
}

/// Moves the calling thread into the network namespace `ns` (a file such as
/// /var/run/netns/NAME or /proc/PID/ns/net). Only the calling thread moves.
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: setns takes a descriptor that `ns` keeps open for the whole
    // call and a flag; it changes only the calling thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates a socket; the descriptor is owned (closed on drop).
pub(crate) fn socket(domain: i32, ty: i32, proto: i32) -> Result<OwnedFd, OsError> {
    // SAFETY: socket() has no memory arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(OsError::last("socket"));
    }
    // SAFETY: `fd` was just returned by socket() and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `setsockopt` with a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(
    fd: RawFd,
    level: i32,
    name: i32,
    value: &T,
    op: &'static str,
) -> Result<(), OsError> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>()).map_err(|_| OsError {
        op,
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: `value` points to `len` readable bytes for the whole call; the
    // kernel only reads them. Callers pass the C type the option expects.
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc < 0 {
        return Err(OsError::last(op));
    }
    Ok(())
}

/// Waits until one of `fds` is readable or `timeout_ms` passes (negative:
/// forever). Returns how many are readable; an interrupted wait returns 0.
/// For the idle back-off of a worker, so at most 64 descriptors.
pub fn poll_fds(fds: &[RawFd], timeout_ms: i32) -> io::Result<usize> {
    const MAX: usize = 64;
    if fds.len() > MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "poll_fds takes at most 64 descriptors",
        ));
    }
    let mut set = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX];
    for (p, &fd) in set.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: `set` holds `fds.len()` (<= MAX) initialized pollfd entries,
    // writable for the duration of the call.
    let rc = unsafe { libc::poll(set.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(usize::try_from(rc).unwrap_or(0))
}

/// A cheap, monotonic cycle counter for per-worker busy/idle accounting:
/// the TSC on x86_64 (invariant on the machines we run on), nanoseconds
/// since first use elsewhere. Convert with [`tsc_hz`].
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64; it only reads the
        // time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Ticks of [`tsc`] per second, measured once against `Instant` over about
/// 20 ms (first call only).
pub fn tsc_hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1_000_000_000;
        }
        let t0 = Instant::now();
        let c0 = tsc();
        std::thread::sleep(Duration::from_millis(20));
        let c1 = tsc();
        let ns = t0.elapsed().as_nanos().max(1);
        let hz = u128::from(c1.wrapping_sub(c0)) * 1_000_000_000 / ns;
        u64::try_from(hz).unwrap_or(u64::MAX).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_is_monotonic_and_hz_plausible() {
        let a = tsc();
        let b = tsc();
        assert!(b >= a);
        let hz = tsc_hz();
        // Between 100 MHz and 10 GHz.
        assert!((100_000_000..10_000_000_000).contains(&hz), "{hz}");
        let c0 = tsc();
        std::thread::sleep(Duration::from_millis(10));
        let secs = (tsc() - c0) as f64 / hz as f64;
        assert!((0.009..0.5).contains(&secs), "{secs}");
    }

    #[test]
    fn poll_fds_times_out_and_sees_readable() {
        let (r, w) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        assert_eq!(poll_fds(&[r.as_raw_fd()], 0).expect("poll"), 0);
        w.send(b"x").expect("send");
        assert_eq!(poll_fds(&[r.as_raw_fd()], 100).expect("poll"), 1);
        let many = [r.as_raw_fd(); 65];
        assert!(poll_fds(&many, 0).is_err());
    }

    #[test]
    fn if_info_reads_loopback() {
        let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).expect("socket");
        let info = if_info(s.as_raw_fd(), "lo").expect("lo");
        assert!(info.index > 0);
        assert_eq!(info.mac, MacAddr::ZERO);
        assert!(info.mtu >= 1500);
        let e = if_info(s.as_raw_fd(), "nonexistent0").expect_err("no such");
        assert_eq!(e.op, "ioctl(SIOCGIFINDEX)");
        assert!(if_info(s.as_raw_fd(), "a234567890123456").is_err());
    }
}
