//! Ports: where frames enter and leave warden.
//!
//! A [`Port`] moves whole bursts of caller-owned buffers (quinn-udp's
//! recvmmsg shape): `rx_burst` fills buffers taken from the caller's
//! [`Pool`], `tx_burst` consumes buffers and gives them back to it. Neither
//! blocks, allocates or logs; a full transmit ring drops and counts.
//!
//! Backends: [`memory::MemoryPort`] (a pair of in-process rings, for tests
//! and benches), [`af_packet::AfPacketPort`] (TPACKET_V3 mmap rings),
//! [`af_xdp::AfXdpPort`] (an AF_XDP socket in copy mode) and
//! [`tap::TapPort`] (a TAP device, possibly in another network namespace).

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use overlay::MacAddr;

use crate::buffer::{Burst, Pool};

pub mod af_packet;
pub mod af_xdp;
pub mod memory;
pub mod sys;
pub mod tap;
#[cfg(test)]
pub(crate) mod testns;

pub use af_packet::{AfPacketConfig, AfPacketPort};
pub use af_xdp::{AfXdpConfig, AfXdpPort};
pub use memory::MemoryPort;
pub use sys::{poll_fds, tsc, tsc_hz};
pub use tap::TapPort;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Result of one [`Port::tx_burst`]: every buffer was either sent or dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Frames handed to the port.
    pub sent: usize,
    /// Frames dropped (ring full, too long for the port, write error).
    pub dropped: usize,
}

/// True when the error means "this interface does not exist".
pub fn is_no_such_device(e: &PortError) -> bool {
    matches!(e, PortError::Os { source, .. } if source.raw_os_error() == Some(libc::ENODEV))
        || matches!(e, PortError::Os { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// The transmit loop of the ring-based ports (AF_PACKET, AF_XDP): each
/// frame of `bufs` goes to `push` unless it is longer than `limit` (a tx
/// error) or the ring filled up earlier in the burst (the rest is counted
/// as ring-full without trying); every buffer returns to `pool`. The
/// caller kicks the kernel afterwards.
pub(crate) fn tx_ring_burst(
    bufs: &mut Burst,
    pool: &mut Pool,
    stats: &mut PortStats,
    limit: usize,
    mut push: impl FnMut(&[u8]) -> sys::TxPush,
) -> TxOutcome {
    let mut res = TxOutcome::default();
    let mut full = false;
    for buf in bufs.drain() {
        let frame = buf.frame();
        if full {
            res.dropped += 1;
            stats.tx_ring_full += 1;
        } else if frame.len() > limit {
            res.dropped += 1;
            stats.tx_errors += 1;
        } else {
            match push(frame) {
                sys::TxPush::Queued => {
                    res.sent += 1;
                    stats.tx_packets += 1;
                    stats.tx_bytes += frame.len() as u64;
                }
                sys::TxPush::RingFull => {
                    full = true;
                    res.dropped += 1;
                    stats.tx_ring_full += 1;
                }
                sys::TxPush::TooLong => {
                    res.dropped += 1;
                    stats.tx_errors += 1;
                }
            }
        }
        pool.put(buf);
    }
    res
}

/// Counters of one port since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received into buffers.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames the kernel dropped because our ring was full (tp_drops), where
    /// the backend knows it.
    pub rx_kernel_drops: u64,
    /// Frames dropped on receive because they did not fit a buffer.
    pub rx_oversize: u64,
    /// Frames handed to the port for sending.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames dropped because the transmit ring or queue was full.
    pub tx_ring_full: u64,
    /// Frames dropped for any other reason (too long, write error).
    pub tx_errors: u64,
}

/// A burst-oriented network port whose buffers belong to the caller.
pub trait Port {
    /// Receives up to `out.free()` frames into buffers taken from `pool`,
    /// appends them to `out` and returns how many were added. Stops early
    /// when nothing more is waiting or the pool is empty (the caller counts
    /// exhaustion by comparing `pool.available()`). Never blocks.
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Burst) -> Result<usize, PortError>;

    /// Sends every buffer of `bufs` and returns them all to `pool`, leaving
    /// `bufs` empty. Frames that do not fit the ring are dropped and counted;
    /// never blocks.
    fn tx_burst(&mut self, bufs: &mut Burst, pool: &mut Pool) -> TxOutcome;

    /// Interface name.
    fn name(&self) -> &str;

    /// The MAC address warden uses on this port.
    fn mac(&self) -> MacAddr;

    /// The link MTU (IP bytes, without the Ethernet header).
    fn mtu(&self) -> usize;

    /// A file descriptor that polls readable when frames wait, for an
    /// idle-time `poll()`; `None` when the port has none (in-memory).
    fn fd(&self) -> Option<RawFd>;

    /// Counters since open.
    fn stats(&self) -> PortStats;
}

/// Errors opening or running a port.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum PortError {
    /// interface name {name:?} is not valid (empty, longer than 15 bytes, or with '/', NUL or whitespace)
    BadName {
        /// The rejected name.
        name: String,
    },
    /// interface {iface}: {op} failed: {source}
    Os {
        /// Interface name.
        iface: String,
        /// The system call or step that failed.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// interface {iface}: {reason}
    Config {
        /// Interface name.
        iface: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// network namespace {path:?}: {source}
    Netns {
        /// The namespace file (e.g. /var/run/netns/NAME).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// TAP {iface}: cannot attach: {source}
    Tap {
        /// TAP name.
        iface: String,
        /// What the tun crate reported.
        source: tun::Error,
    },
    /// receive failed: {0}
    Rx(io::Error),
}

/// Checks a Linux interface name before it reaches an ioctl or a path.
pub fn check_ifname(name: &str) -> Result<(), PortError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(PortError::BadName {
            name: name.to_owned(),
        })
    }
}

/// A locally administered unicast MAC derived from `name` (FNV-1a), stable
/// across restarts. Used where warden is the "wire" end of a link whose
/// kernel-side MAC belongs to someone else (TAP, in-memory ports).
pub fn local_mac(name: &str) -> MacAddr {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    // 0x02: locally administered, unicast.
    MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// Runs `f` on a short-lived thread that first joins the network namespace
/// at `netns`. Sockets and devices opened inside `f` stay in that namespace
/// and keep working from any thread afterwards; the calling thread's own
/// namespace is never changed.
pub fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> Result<T, PortError> + Send,
) -> Result<T, PortError> {
    let file = std::fs::File::open(netns).map_err(|source| PortError::Netns {
        path: netns.to_owned(),
        source,
    })?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            sys::enter_netns(&file).map_err(|source| PortError::Netns {
                path: netns.to_owned(),
                source,
            })?;
            f()
        });
        handle.join().unwrap_or_else(|_| {
            Err(PortError::Netns {
                path: netns.to_owned(),
                source: io::Error::other("namespace helper thread panicked"),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(check_ifname("a234567890123456").is_err());
        for bad in ["", "a/b", "a b", "a\0b", "..", "eth0:1"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_mac_is_stable_local_unicast() {
        let a = local_mac("tap0");
        assert_eq!(a, local_mac("tap0"));
        assert_ne!(a, local_mac("tap1"));
        assert_eq!(a.0[0] & 0x03, 0x02);
        assert!(a.is_unicast());
    }

    #[test]
    fn in_netns_missing_path_is_an_error() {
        let r = in_netns(Path::new("/nonexistent/netns/x"), || Ok(1));
        assert!(matches!(r, Err(PortError::Netns { .. })));
    }
}
