//! AF_PACKET port: a TPACKET_V3 mmap RX ring and a TPACKET_V3 TX ring
//! (fixed-size frames, kernel >= 4.11) on one socket per worker.
//!
//! Receive copies each frame from the ring into a pool buffer (one memcpy;
//! the ring block goes back to the kernel as soon as it is read), putting
//! back a VLAN tag the kernel stripped. Transmit copies each frame into a
//! ring slot and kicks the kernel once per burst.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use overlay::MacAddr;

use super::sys::{OsError, PacketSocket, RingConfig};
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
        let sock = &mut self.sock;
        let res = super::tx_ring_burst(bufs, pool, &mut self.stats, self.tx_limit, |f| {
            sock.tx_push(f)
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::is_no_such_device;
    use crate::port::testns::{frame, is_test_frame};
    use crate::port::testns::{NetNs, VethPair};
    use std::time::{Duration, Instant};

    /// Receives frames matching `keep` on `port` until `want` arrived or 3 s
    /// passed.
    fn receive_where(
        port: &mut AfPacketPort,
        pool: &mut Pool,
        want: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<crate::buffer::Buf> {
        let mut got = Vec::new();
        let mut burst = Burst::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while got.len() < want && Instant::now() < deadline {
            let n = port.rx_burst(pool, &mut burst).expect("rx");
            if n == 0 {
                let _ = crate::port::poll_fds(&[port.fd().expect("fd")], 10);
            }
            for b in burst.drain() {
                if keep(b.frame()) {
                    got.push(b);
                } else {
                    pool.put(b);
                }
            }
        }
        got
    }

    fn receive(port: &mut AfPacketPort, pool: &mut Pool, want: usize) -> Vec<Vec<u8>> {
        let bufs = receive_where(port, pool, want, is_test_frame);
        let frames = bufs.iter().map(|b| b.frame().to_vec()).collect();
        for b in bufs {
            pool.put(b);
        }
        frames
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
    fn ports_are_send() {
        fn send<T: Send>() {}
        send::<AfPacketPort>();
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

    /// Several MB through a 4 x 64 KiB RX ring: blocks are handed back and
    /// reused many times, and bursts end in the middle of blocks.
    #[test]
    fn rx_ring_wraps_many_times() {
        let ns = NetNs::new("afw");
        let veth = VethPair::new(&ns, &ns);
        let rings = RingConfig {
            rx_block_size: 1 << 16,
            rx_block_nr: 4,
            ..RingConfig::default()
        };
        let open = |iface: &str| {
            AfPacketPort::open(&AfPacketConfig {
                netns: Some(ns.path()),
                rings,
                ..AfPacketConfig::new(iface)
            })
            .expect("open")
        };
        let (mut a, mut b) = (open(&veth.a), open(&veth.b));
        let mut pool = Pool::new(512);
        let mut seq = 0u16;
        for _round in 0..40 {
            let mut frames = Vec::new();
            for _ in 0..2 {
                let chunk: Vec<Vec<u8>> = (0..64)
                    .map(|_| {
                        seq = seq.wrapping_add(1);
                        frame(b.mac(), a.mac(), seq, 200 + usize::from(seq % 7) * 200)
                    })
                    .collect();
                assert_eq!(send(&mut a, &mut pool, &chunk).sent, 64);
                frames.extend(chunk);
            }
            let got = receive(&mut b, &mut pool, frames.len());
            assert_eq!(got.len(), frames.len());
            assert!(got == frames, "frames differ in round {_round}");
        }
        assert_eq!(b.stats().rx_kernel_drops, 0);
        assert_eq!(pool.available(), 512);
    }

    #[test]
    fn stripped_vlan_tags_are_put_back() {
        let ns = NetNs::new("afv");
        let veth = VethPair::new(&ns, &ns);
        let mut a = AfPacketPort::open_iface(&veth.a, Some(&ns.path())).expect("open a");
        let mut b = AfPacketPort::open_iface(&veth.b, Some(&ns.path())).expect("open b");
        let mut pool = Pool::new(64);
        let tag = |tpid: u16, tci: u16, len: usize| {
            let plain = frame(b.mac(), a.mac(), tci, len);
            let mut f = plain[..12].to_vec();
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
            f.extend_from_slice(&plain[12..]);
            f
        };
        let frames = vec![
            tag(0x8100, 0xa123, 100),
            tag(0x88a8, 0x0042, 64),
            tag(0x8100, 0, 1500),
        ];
        assert_eq!(send(&mut a, &mut pool, &frames).sent, 3);
        assert_eq!(receive(&mut b, &mut pool, 3), frames);
    }

    /// A UDP datagram sent by the kernel stack over veth arrives with a
    /// partial checksum; the buffer says so.
    #[test]
    fn partial_checksum_is_flagged() {
        let ns = NetNs::new("afc");
        let veth = VethPair::new(&ns, &ns);
        let mut a = AfPacketPort::open_iface(&veth.a, Some(&ns.path())).expect("open a");
        ns.ip(&["addr", "add", "192.0.2.2/24", "dev", &veth.b]);
        ns.ip(&[
            "neigh",
            "add",
            "192.0.2.1",
            "lladdr",
            &a.mac().to_string(),
            "dev",
            &veth.b,
        ]);
        let sock = in_netns(&ns.path(), || {
            std::net::UdpSocket::bind("192.0.2.2:0").map_err(PortError::Rx)
        })
        .expect("udp socket in namespace");
        sock.send_to(b"hello", "192.0.2.1:9").expect("send");
        let mut pool = Pool::new(64);
        let is_udp = |f: &[u8]| f.get(12..14) == Some(&[0x08, 0x00][..]) && f.get(23) == Some(&17);
        let got = receive_where(&mut a, &mut pool, 1, is_udp);
        let buf = got.first().expect("the UDP frame");
        assert_eq!(buf.frame().get(42..47), Some(&b"hello"[..]));
        assert!(
            buf.flags.contains(BufFlags::CSUM_NOT_READY),
            "{:?}",
            buf.flags
        );
    }

    #[test]
    fn full_tx_ring_drops_and_counts_then_recovers() {
        let ns = NetNs::new("aff");
        let veth = VethPair::new(&ns, &ns);
        let rings = RingConfig {
            tx_frame_size: 4096,
            tx_frame_nr: 8,
            ..RingConfig::default()
        };
        let mut a = AfPacketPort::open(&AfPacketConfig {
            netns: Some(ns.path()),
            rings,
            ..AfPacketConfig::new(&veth.a)
        })
        .expect("open a");
        let mut b = AfPacketPort::open_iface(&veth.b, Some(&ns.path())).expect("open b");
        let mut pool = Pool::new(128);
        // The whole burst is queued before the kick: 8 slots, 56 drops.
        let frames: Vec<Vec<u8>> = (0..64).map(|i| frame(b.mac(), a.mac(), i, 100)).collect();
        assert_eq!(
            send(&mut a, &mut pool, &frames),
            TxOutcome {
                sent: 8,
                dropped: 56
            }
        );
        assert_eq!(a.stats().tx_ring_full, 56);
        assert_eq!(receive(&mut b, &mut pool, 8), frames[..8].to_vec());
        // Slots come back once the kernel is done with them.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut sent = 0;
        while sent == 0 && Instant::now() < deadline {
            sent = send(&mut a, &mut pool, &frames[8..9]).sent;
        }
        assert_eq!(sent, 1);
        assert_eq!(pool.available(), 128);
    }

    #[test]
    fn fanout_group_splits_without_duplicates() {
        let ns = NetNs::new("afh");
        let veth = VethPair::new(&ns, &ns);
        let mut a = AfPacketPort::open_iface(&veth.a, Some(&ns.path())).expect("open a");
        let open_b = || {
            AfPacketPort::open(&AfPacketConfig {
                netns: Some(ns.path()),
                fanout_group: Some(0x4242),
                ..AfPacketConfig::new(&veth.b)
            })
            .expect("open b")
        };
        let (mut b1, mut b2) = (open_b(), open_b());
        let mut pool = Pool::new(512);
        // IPv4/UDP frames of 64 different flows (source ports).
        let frames: Vec<Vec<u8>> = (0..64u16)
            .map(|i| {
                let mut f = Vec::new();
                f.extend_from_slice(&b1.mac().0);
                f.extend_from_slice(&a.mac().0);
                f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0]);
                f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
                f.extend_from_slice(&(10000 + i).to_be_bytes());
                f.extend_from_slice(&[0x30, 0x39, 0, 12, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
                f
            })
            .collect();
        assert_eq!(send(&mut a, &mut pool, &frames).sent, 64);
        let is_ours = |f: &[u8]| f.get(26..30) == Some(&[192, 0, 2, 1][..]);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        let (mut n1, mut n2) = (0, 0);
        while got.len() < 64 && Instant::now() < deadline {
            for (port, n) in [(&mut b1, &mut n1), (&mut b2, &mut n2)] {
                let mut burst = Burst::new();
                port.rx_burst(&mut pool, &mut burst).expect("rx");
                for buf in burst.drain() {
                    if is_ours(buf.frame()) {
                        *n += 1;
                        got.push(buf.frame().to_vec());
                    }
                    pool.put(buf);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(got.len(), 64, "each frame exactly once across the group");
        got.sort();
        let mut want = frames.clone();
        want.sort();
        assert_eq!(got, want);
        assert!(
            n1 > 0 && n2 > 0,
            "hash spread 64 flows over both: {n1} / {n2}"
        );
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
