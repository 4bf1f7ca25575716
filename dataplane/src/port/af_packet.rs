//! AF_PACKET port: a TPACKET_V3 mmap RX ring and a TPACKET_V3 TX ring
//! (fixed-size frames, kernel >= 4.11) on one socket per worker.
//!
//! Receive copies each frame from the ring into a pool buffer (one memcpy;
//! the ring block goes back to the kernel as soon as it is read), putting
//! back a VLAN tag the kernel stripped. Transmit copies each frame into a
//! ring slot and kicks the kernel once per burst.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use overlay::MacAddr;

use super::sys::{OsError, PacketSocket, RingConfig, TxPush};
use super::{check_ifname, in_netns, Port, PortError, PortStats, TxOutcome};
use crate::buffer::{BufFlags, Burst, Pool};

/// How to open an [`AfPacketPort`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface name.
    pub iface: String,
    /// Join this PACKET_FANOUT_HASH group (one socket per worker on the
    /// same interface, same group id).
    pub fanout_group: Option<u16>,
    /// Open the interface in this network namespace (a file such as
    /// /var/run/netns/NAME) instead of the caller's.
    pub netns: Option<PathBuf>,
    /// Ring sizes; the defaults suit 1500-byte MTUs.
    pub rings: RingConfig,
}

impl AfPacketConfig {
    /// Default rings, no fanout, caller's namespace.
    pub fn new(iface: &str) -> AfPacketConfig {
        AfPacketConfig {
            iface: iface.to_owned(),
            ..AfPacketConfig::default()
        }
    }
}

/// A port on one interface through an AF_PACKET socket with mmap rings.
#[derive(Debug)]
pub struct AfPacketPort {
    name: String,
    sock: PacketSocket,
    mac: MacAddr,
    mtu: usize,
    /// Longest frame the kernel accepts on TX: MTU + Ethernet + one VLAN tag.
    tx_limit: usize,
    /// A failed kick left frames marked in the ring: kick again soon.
    tx_pending: bool,
    stats: PortStats,
    /// Kernel counters are read-and-reset, so `stats(&self)` adds them up.
    kernel_drops: Cell<u64>,
}

fn os(iface: &str, e: OsError) -> PortError {
    PortError::Os {
        iface: iface.to_owned(),
        op: e.op,
        source: e.source,
    }
}

impl AfPacketPort {
    /// Opens, maps and binds the socket; joins the fanout group if asked.
    pub fn open(cfg: &AfPacketConfig) -> Result<AfPacketPort, PortError> {
        check_ifname(&cfg.iface)?;
        let open = || -> Result<AfPacketPort, PortError> {
            let (sock, info) =
                PacketSocket::open(&cfg.iface, &cfg.rings).map_err(|e| os(&cfg.iface, e))?;
            if let Some(group) = cfg.fanout_group {
                sock.join_fanout(group).map_err(|e| os(&cfg.iface, e))?;
            }
            // Ethernet header + one 802.1Q tag, as the kernel allows.
            let tx_limit = (info.mtu + 18).min(sock.tx_max_frame());
            Ok(AfPacketPort {
                name: cfg.iface.clone(),
                sock,
                mac: info.mac,
                mtu: info.mtu,
                tx_limit,
                tx_pending: false,
                stats: PortStats::default(),
                kernel_drops: Cell::new(0),
            })
        };
        match cfg.netns.as_deref() {
            Some(ns) => in_netns(ns, open),
            None => open(),
        }
    }

    /// Shorthand: default rings, no fanout, optional namespace.
    pub fn open_iface(iface: &str, netns: Option<&Path>) -> Result<AfPacketPort, PortError> {
        AfPacketPort::open(&AfPacketConfig {
            netns: netns.map(Path::to_owned),
            ..AfPacketConfig::new(iface)
        })
    }

    fn kick(&mut self) {
        self.tx_pending = match self.sock.tx_kick() {
            Ok(()) => false,
            // ENOBUFS/EAGAIN: the device queue was full; the frames stay
            // marked and the next burst kicks again. Other errors (link
            // down) behave the same: nothing to block on here.
            Err(_) => true,
        };
    }
}

impl Port for AfPacketPort {
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Burst) -> Result<usize, PortError> {
        if self.tx_pending {
            self.kick();
        }
        let mut n = 0;
        while !out.is_full() {
            let Some(mut buf) = pool.get() else {
                break;
            };
            let Some(f) = self.sock.rx_next() else {
                pool.put(buf);
                break;
            };
            let ok = match f.vlan {
                None => buf.copy_from(f.data),
                Some((tpid, tci)) => {
                    // Put the stripped tag back after the two MACs.
                    match (f.data.get(..12), f.data.get(12..)) {
                        (Some(macs), Some(rest)) => {
                            buf.copy_from(macs)
                                && match buf.append(4 + rest.len()) {
                                    Some(dst) => {
                                        let (tag, tail) = dst.split_at_mut(4);
                                        tag[..2].copy_from_slice(&tpid.to_be_bytes());
                                        tag[2..].copy_from_slice(&tci.to_be_bytes());
                                        tail.copy_from_slice(rest);
                                        true
                                    }
                                    None => false,
                                }
                        }
                        _ => false,
                    }
                }
            };
            // A frame longer than its capture (truncated by the ring) is
            // as unusable as one longer than a buffer.
            if !ok || (f.wire_len as usize) > f.data.len() {
                self.stats.rx_oversize += 1;
                pool.put(buf);
                continue;
            }
            if f.status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                buf.flags.insert(BufFlags::CSUM_NOT_READY);
            }
            if f.status & libc::TP_STATUS_CSUM_VALID != 0 {
                buf.flags.insert(BufFlags::CSUM_VALID);
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += buf.len() as u64;
            // Cannot fail: the loop runs only while `out` has room.
            if let Err(b) = out.push(buf) {
                pool.put(b);
                break;
            }
            n += 1;
        }
        self.sock.rx_release_done();
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut Burst, pool: &mut Pool) -> TxOutcome {
        let mut res = TxOutcome::default();
        let mut full = false;
        for buf in bufs.drain() {
            let frame = buf.frame();
            if full {
                res.dropped += 1;
                self.stats.tx_ring_full += 1;
            } else if frame.len() > self.tx_limit {
                res.dropped += 1;
                self.stats.tx_errors += 1;
            } else {
                match self.sock.tx_push(frame) {
                    TxPush::Queued => {
                        res.sent += 1;
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += frame.len() as u64;
                    }
                    TxPush::RingFull => {
                        full = true;
                        res.dropped += 1;
                        self.stats.tx_ring_full += 1;
                    }
                    TxPush::TooLong => {
                        res.dropped += 1;
                        self.stats.tx_errors += 1;
                    }
                }
            }
            pool.put(buf);
        }
        if res.sent > 0 || self.tx_pending {
            self.kick();
        }
        res
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.sock.fd())
    }

    fn stats(&self) -> PortStats {
        if let Ok((_, drops)) = self.sock.take_stats() {
            self.kernel_drops.set(self.kernel_drops.get() + drops);
        }
        PortStats {
            rx_kernel_drops: self.kernel_drops.get(),
            ..self.stats
        }
    }
}

/// True when the error means "this interface does not exist".
pub fn is_no_such_device(e: &PortError) -> bool {
    matches!(e, PortError::Os { source, .. } if source.raw_os_error() == Some(libc::ENODEV))
        || matches!(e, PortError::Os { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::testns::{NetNs, VethPair};
    use std::time::{Duration, Instant};

    /// IEEE 802 local experimental ethertype: nothing else sends it.
    const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

    fn frame(dst: MacAddr, src: MacAddr, seq: u16, len: usize) -> Vec<u8> {
        let mut f = Vec::with_capacity(len);
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&TEST_ETHERTYPE);
        f.extend_from_slice(&seq.to_be_bytes());
        let mut x = seq as u8;
        while f.len() < len {
            f.push(x);
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        f
    }

    /// Receives test frames on `port` until `want` arrived or 3 s passed.
    fn receive(port: &mut AfPacketPort, pool: &mut Pool, want: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut burst = Burst::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while got.len() < want && Instant::now() < deadline {
            let n = port.rx_burst(pool, &mut burst).expect("rx");
            if n == 0 {
                let _ = crate::port::poll_fds(&[port.fd().expect("fd")], 10);
            }
            for b in burst.drain() {
                if b.frame().get(12..14) == Some(&TEST_ETHERTYPE[..]) {
                    got.push(b.frame().to_vec());
                }
                pool.put(b);
            }
        }
        got
    }

    fn send(port: &mut AfPacketPort, pool: &mut Pool, frames: &[Vec<u8>]) -> TxOutcome {
        let mut burst = Burst::new();
        for f in frames {
            let mut b = pool.get().expect("buf");
            assert!(b.copy_from(f));
            burst.push(b).expect("room");
        }
        port.tx_burst(&mut burst, pool)
    }

    #[test]
    fn veth_bursts_both_ways() {
        let ns_a = NetNs::new("afa");
        let ns_b = NetNs::new("afb");
        let veth = VethPair::new(&ns_a, &ns_b);
        let mut a = AfPacketPort::open_iface(&veth.a, Some(&ns_a.path())).expect("open a");
        let mut b = AfPacketPort::open_iface(&veth.b, Some(&ns_b.path())).expect("open b");
        assert_eq!(a.name(), veth.a);
        assert_eq!(a.mtu(), 1500);
        assert!(a.mac().is_unicast());
        assert_ne!(a.mac(), b.mac());
        let mut pool = Pool::new(256);

        for dir in 0..2 {
            let (tx, rx) = if dir == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let frames: Vec<Vec<u8>> = (0..64u16)
                .map(|i| frame(rx.mac(), tx.mac(), i, 60 + (usize::from(i) * 97) % 1455))
                .collect();
            let out = send(tx, &mut pool, &frames);
            assert_eq!(
                out,
                TxOutcome {
                    sent: 64,
                    dropped: 0
                }
            );
            let got = receive(rx, &mut pool, 64);
            assert_eq!(got.len(), 64, "received {} of 64", got.len());
            assert_eq!(got, frames);
            assert_eq!(pool.available(), 256);
        }
        let sa = a.stats();
        assert_eq!((sa.tx_packets, sa.tx_ring_full, sa.tx_errors), (64, 0, 0));
        assert!(sa.rx_packets >= 64);
        assert_eq!(sa.rx_kernel_drops, 0);
    }

    #[test]
    fn oversize_tx_is_dropped_and_counted() {
        let ns = NetNs::new("afo");
        let veth = VethPair::new(&ns, &ns);
        let mut a = AfPacketPort::open_iface(&veth.a, Some(&ns.path())).expect("open");
        let mut pool = Pool::new(8);
        let big = frame(MacAddr::BROADCAST, a.mac(), 1, 1600);
        let ok = frame(MacAddr::BROADCAST, a.mac(), 2, 1514);
        let out = send(&mut a, &mut pool, &[big, ok]);
        assert_eq!(
            out,
            TxOutcome {
                sent: 1,
                dropped: 1
            }
        );
        assert_eq!(a.stats().tx_errors, 1);
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn missing_interface_and_bad_name_are_errors() {
        let ns = NetNs::new("afm");
        let e = AfPacketPort::open_iface("nosuchif0", Some(&ns.path())).expect_err("missing");
        assert!(is_no_such_device(&e), "{e}");
        assert!(e.to_string().contains("nosuchif0"), "{e}");
        assert!(matches!(
            AfPacketPort::open_iface("bad/name", None),
            Err(PortError::BadName { .. })
        ));
    }
}
