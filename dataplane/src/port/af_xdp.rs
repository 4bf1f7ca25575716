//! AF_XDP port: one AF_XDP socket on queue 0 of an interface, in copy mode
//! (veth and most virtual NICs have no zero-copy), with a redirect program
//! attached through a BPF link for as long as the port lives.
//!
//! Receive copies each frame from its UMEM frame into a pool buffer and
//! puts the UMEM frame straight back on the fill ring. Transmit copies each
//! buffer into a free UMEM frame, queues a descriptor, and kicks the kernel
//! once per burst (sendto, repeated while the kernel takes its batch);
//! finished frames come back through the completion ring. Zero-copy between
//! UMEM and [`Buf`](crate::buffer::Buf)s would need the pool itself to live
//! in the UMEM: the next step, not done here.
//!
//! Compared with AF_PACKET on a veth, the kernel sends our frames through
//! the generic AF_XDP path (an skb built from the UMEM frame) instead of
//! `tpacket_snd`, and the TX ring no longer makes veth copy every frame into
//! fresh pages (`skb_copy_ubufs`).
//!
//! Limits: queue 0 only, so one worker per interface (no fanout); frames up
//! to `frame_size - 256` bytes on receive (1792 with the default 2048-byte
//! frames: MTU 1500 fits, jumbo frames do not). AF_XDP carries no checksum
//! metadata: a sender on the same host whose veth offloads checksums hands
//! us frames with partial checksums that we cannot recognize, so, as for
//! AF_PACKET, turn tx checksum offload off on the peer (`ethtool -K IF tx
//! off`; the testbed does). Generic (SKB-mode) XDP also does not see a VLAN
//! tag the sender's stack kept out of the frame (hardware-accelerated
//! tagging); tags inside the frame pass unchanged.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use overlay::MacAddr;

use super::sys::{OsError, XdpConfig, XdpMode, XdpSocket};
use super::{check_ifname, in_netns, Port, PortError, PortStats, TxOutcome};
use crate::buffer::{Burst, Pool};

/// How to open an [`AfXdpPort`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Interface name.
    pub iface: String,
    /// Open the interface in this network namespace (a file such as
    /// /var/run/netns/NAME) instead of the caller's.
    pub netns: Option<PathBuf>,
    /// UMEM and ring sizes, queue and XDP mode.
    pub xdp: XdpConfig,
}

impl AfXdpConfig {
    /// Default UMEM and rings, queue 0, caller's namespace.
    pub fn new(iface: &str) -> AfXdpConfig {
        AfXdpConfig {
            iface: iface.to_owned(),
            ..AfXdpConfig::default()
        }
    }
}

/// A port on one interface queue through an AF_XDP socket.
#[derive(Debug)]
pub struct AfXdpPort {
    name: String,
    sock: XdpSocket,
    mac: MacAddr,
    mtu: usize,
    /// Longest frame sent: MTU + Ethernet + one VLAN tag, at most a frame.
    tx_limit: usize,
    /// A kick failed or was cut short: kick again soon.
    tx_pending: bool,
    stats: PortStats,
}

fn os(iface: &str, e: OsError) -> PortError {
    PortError::Os {
        iface: iface.to_owned(),
        op: e.op,
        source: e.source,
    }
}

impl AfXdpPort {
    /// Creates the UMEM and rings, binds the socket and attaches the
    /// redirect program.
    pub fn open(cfg: &AfXdpConfig) -> Result<AfXdpPort, PortError> {
        check_ifname(&cfg.iface)?;
        let open = || -> Result<AfXdpPort, PortError> {
            let (sock, info) =
                XdpSocket::open(&cfg.iface, &cfg.xdp).map_err(|e| os(&cfg.iface, e))?;
            let tx_limit = (info.mtu + 18).min(sock.tx_max_frame());
            Ok(AfXdpPort {
                name: cfg.iface.clone(),
                sock,
                mac: info.mac,
                mtu: info.mtu,
                tx_limit,
                tx_pending: false,
                stats: PortStats::default(),
            })
        };
        match cfg.netns.as_deref() {
            Some(ns) => in_netns(ns, open),
            None => open(),
        }
    }

    /// Shorthand: default UMEM and rings, queue 0, optional namespace.
    pub fn open_iface(iface: &str, netns: Option<&Path>) -> Result<AfXdpPort, PortError> {
        AfXdpPort::open(&AfXdpConfig {
            netns: netns.map(Path::to_owned),
            ..AfXdpConfig::new(iface)
        })
    }

    /// The XDP hook the redirect program runs in.
    pub fn mode(&self) -> XdpMode {
        self.sock.mode()
    }

    fn kick(&mut self) {
        // EAGAIN after the retries, ENOBUFS, link down: frames stay on the
        // ring and the next burst kicks again; nothing to block on here.
        self.tx_pending = self.sock.tx_kick().is_err();
    }
}

impl Port for AfXdpPort {
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Burst) -> Result<usize, PortError> {
        if self.tx_pending {
            self.kick();
        }
        let max = out.free().min(pool.available());
        let mut n = 0;
        let stats = &mut self.stats;
        self.sock.rx_burst(max, |data| {
            let Some(mut buf) = pool.get() else {
                return; // cannot happen: at most `available` frames
            };
            if !buf.copy_from(data) {
                stats.rx_oversize += 1;
                pool.put(buf);
                return;
            }
            stats.rx_packets += 1;
            stats.rx_bytes += data.len() as u64;
            match out.push(buf) {
                Ok(()) => n += 1,
                Err(b) => pool.put(b), // cannot happen: at most `free` frames
            }
        });
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut Burst, pool: &mut Pool) -> TxOutcome {
        self.sock.tx_reclaim();
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
        // The kernel's counters only grow: no need to add them up.
        let k = self.sock.stats().unwrap_or_default();
        PortStats {
            rx_kernel_drops: k.rx_dropped + k.rx_ring_full + self.sock.bad_descs(),
            tx_errors: self.stats.tx_errors + k.tx_invalid_descs,
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
    use crate::port::AfPacketPort;
    use std::time::{Duration, Instant};

    /// Receives frames matching `keep` on `port` until `want` arrived or 3 s
    /// passed.
    fn receive_where(
        port: &mut dyn Port,
        pool: &mut Pool,
        want: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
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
                    got.push(b.frame().to_vec());
                }
                pool.put(b);
            }
        }
        got
    }

    fn receive(port: &mut dyn Port, pool: &mut Pool, want: usize) -> Vec<Vec<u8>> {
        receive_where(port, pool, want, is_test_frame)
    }

    fn send(port: &mut dyn Port, pool: &mut Pool, frames: &[Vec<u8>]) -> TxOutcome {
        let mut out = TxOutcome::default();
        for chunk in frames.chunks(crate::buffer::BURST) {
            let mut burst = Burst::new();
            for f in chunk {
                let mut b = pool.get().expect("buf");
                assert!(b.copy_from(f));
                burst.push(b).expect("room");
            }
            let o = port.tx_burst(&mut burst, pool);
            out.sent += o.sent;
            out.dropped += o.dropped;
        }
        out
    }

    /// No IPv6 neighbour or MLD chatter in `ns` (it takes frames and moves
    /// counts the tests check exactly): before its links are made.
    fn without_ipv6(ns: &NetNs) {
        let sysctl = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "sysctl", "-qw"])
            .args([
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ])
            .output()
            .expect("run sysctl");
        assert!(sysctl.status.success(), "{sysctl:?}");
    }

    fn xdp_attached(ns: &NetNs, iface: &str) -> bool {
        ns.ip_output(&["link", "show", "dev", iface])
            .contains("prog/xdp")
    }

    #[test]
    fn ports_are_send() {
        fn send<T: Send>() {}
        send::<AfXdpPort>();
    }

    /// Frames from an AF_PACKET peer arrive byte-exact, ours arrive at the
    /// peer byte-exact, 1000 at a time, in both XDP modes; the program
    /// leaves the interface when the port drops, and the queue can be bound
    /// again right away.
    #[test]
    fn veth_bursts_both_ways_and_detach_on_drop() {
        let ns_a = NetNs::new("xa");
        let ns_b = NetNs::new("xb");
        // The receive counts below are exact (a late MLD report once made
        // them one more).
        without_ipv6(&ns_a);
        without_ipv6(&ns_b);
        let veth = VethPair::new(&ns_a, &ns_b);
        let mut peer = AfPacketPort::open_iface(&veth.b, Some(&ns_b.path())).expect("peer");
        let mut pool = Pool::new(2048);
        for mode in [XdpMode::Skb, XdpMode::Driver] {
            let mut x = AfXdpPort::open(&AfXdpConfig {
                netns: Some(ns_a.path()),
                xdp: XdpConfig {
                    mode: Some(mode),
                    ..XdpConfig::default()
                },
                ..AfXdpConfig::new(&veth.a)
            })
            .expect("open af_xdp");
            assert_eq!(x.mode(), mode);
            assert_eq!(x.name(), veth.a);
            assert_eq!(x.mtu(), 1500);
            assert!(x.mac().is_unicast());
            assert!(xdp_attached(&ns_a, &veth.a), "program attached");

            // Small, full-size and tagged frames, each way.
            let mut frames: Vec<Vec<u8>> = (0..64u16)
                .map(|i| frame(x.mac(), peer.mac(), i, 60 + (usize::from(i) * 97) % 1455))
                .collect();
            let mut tagged = frames[3][..12].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
            tagged.extend_from_slice(&frames[3][12..]);
            frames.push(tagged);
            assert_eq!(send(&mut peer, &mut pool, &frames).sent, frames.len());
            assert_eq!(receive(&mut x, &mut pool, frames.len()), frames);
            let back: Vec<Vec<u8>> = frames
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    f[..6].copy_from_slice(&peer.mac().0);
                    f[6..12].copy_from_slice(&x.mac().0);
                    f
                })
                .collect();
            assert_eq!(send(&mut x, &mut pool, &back).sent, back.len());
            assert_eq!(receive(&mut peer, &mut pool, back.len()), back);

            // 1000 frames each way, all queued before anyone reads.
            let many: Vec<Vec<u8>> = (0..1000u16)
                .map(|i| frame(x.mac(), peer.mac(), i, 64 + usize::from(i % 23) * 61))
                .collect();
            assert_eq!(send(&mut peer, &mut pool, &many).sent, 1000);
            assert_eq!(receive(&mut x, &mut pool, 1000), many);
            let many_back: Vec<Vec<u8>> = (0..1000u16)
                .map(|i| frame(peer.mac(), x.mac(), i, 64 + usize::from(i % 29) * 51))
                .collect();
            let out = send(&mut x, &mut pool, &many_back);
            assert_eq!(out.sent, 1000, "{out:?}");
            assert_eq!(receive(&mut peer, &mut pool, 1000), many_back);

            let s = x.stats();
            assert_eq!((s.tx_packets, s.tx_ring_full, s.tx_errors), (1065, 0, 0));
            assert_eq!(s.rx_packets, 1065);
            assert_eq!(s.rx_kernel_drops, 0);
            assert_eq!(pool.available(), 2048);

            drop(x);
            assert!(!xdp_attached(&ns_a, &veth.a), "program detached on drop");
        }
        // Rebinding the queue right after close works (EBUSY is retried).
        let x = AfXdpPort::open_iface(&veth.a, Some(&ns_a.path())).expect("reopen");
        drop(x);
        let x = AfXdpPort::open_iface(&veth.a, Some(&ns_a.path())).expect("reopen again");
        assert!(xdp_attached(&ns_a, &veth.a));
        drop(x);
        assert!(!xdp_attached(&ns_a, &veth.a));
    }

    #[test]
    fn full_rings_drop_and_count_then_recover() {
        let ns = NetNs::new("xf");
        // No IPv6 chatter taking fill frames: the counts below are exact.
        without_ipv6(&ns);
        let veth = VethPair::new(&ns, &ns);
        let mut x = AfXdpPort::open(&AfXdpConfig {
            netns: Some(ns.path()),
            xdp: XdpConfig {
                rx_frames: 16,
                tx_frames: 8,
                ..XdpConfig::default()
            },
            ..AfXdpConfig::new(&veth.a)
        })
        .expect("open af_xdp");
        let mut peer = AfPacketPort::open_iface(&veth.b, Some(&ns.path())).expect("peer");
        let mut pool = Pool::new(256);

        // TX: 8 frames, then the whole burst is queued before the kick.
        let frames: Vec<Vec<u8>> = (0..64)
            .map(|i| frame(peer.mac(), x.mac(), i, 100))
            .collect();
        assert_eq!(
            send(&mut x, &mut pool, &frames),
            TxOutcome {
                sent: 8,
                dropped: 56
            }
        );
        assert_eq!(x.stats().tx_ring_full, 56);
        assert_eq!(receive(&mut peer, &mut pool, 8), frames[..8].to_vec());
        // Frames come back through the completion ring.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut sent = 0;
        while sent < 8 && Instant::now() < deadline {
            sent += send(&mut x, &mut pool, &frames[8..9]).sent;
        }
        assert_eq!(sent, 8);

        // RX: 16 fill frames, nobody reading: 48 of 64 dropped by the kernel.
        let frames: Vec<Vec<u8>> = (0..64)
            .map(|i| frame(x.mac(), peer.mac(), i, 100))
            .collect();
        assert_eq!(send(&mut peer, &mut pool, &frames).sent, 64);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(receive(&mut x, &mut pool, 16), frames[..16].to_vec());
        assert_eq!(x.stats().rx_kernel_drops, 48);
        // And it receives again once the frames are back on the fill ring.
        assert_eq!(send(&mut peer, &mut pool, &frames[..4]).sent, 4);
        assert_eq!(receive(&mut x, &mut pool, 4), frames[..4].to_vec());
        assert_eq!(pool.available(), 256);
    }

    /// Every RX frame goes round many times (64 frames, 30 rounds of 48):
    /// nothing is dropped.
    #[test]
    fn rx_frames_are_reused_without_drops() {
        let ns = NetNs::new("xr");
        let veth = VethPair::new(&ns, &ns);
        let mut x = AfXdpPort::open(&AfXdpConfig {
            netns: Some(ns.path()),
            xdp: XdpConfig {
                rx_frames: 64,
                ..XdpConfig::default()
            },
            ..AfXdpConfig::new(&veth.a)
        })
        .expect("open af_xdp");
        let mut peer = AfPacketPort::open_iface(&veth.b, Some(&ns.path())).expect("peer");
        let mut pool = Pool::new(256);
        for round in 0..30u16 {
            let frames: Vec<Vec<u8>> = (0..48u16)
                .map(|i| frame(x.mac(), peer.mac(), round * 48 + i, 100 + usize::from(i)))
                .collect();
            assert_eq!(send(&mut peer, &mut pool, &frames).sent, 48);
            let got = receive(&mut x, &mut pool, 48);
            assert!(got == frames, "round {round}: {} of 48", got.len());
        }
        assert_eq!(x.stats().rx_kernel_drops, 0);
    }

    /// The idle poll() wakes as soon as a frame waits, in both modes.
    #[test]
    fn fd_wakes_an_idle_poll() {
        let ns = NetNs::new("xp");
        let veth = VethPair::new(&ns, &ns);
        let mut peer = AfPacketPort::open_iface(&veth.b, Some(&ns.path())).expect("peer");
        let mut pool = Pool::new(64);
        for mode in [XdpMode::Skb, XdpMode::Driver] {
            let mut x = AfXdpPort::open(&AfXdpConfig {
                netns: Some(ns.path()),
                xdp: XdpConfig {
                    mode: Some(mode),
                    ..XdpConfig::default()
                },
                ..AfXdpConfig::new(&veth.a)
            })
            .expect("open af_xdp");
            // Drain whatever the link sent so far.
            let mut burst = Burst::new();
            while x.rx_burst(&mut pool, &mut burst).expect("rx") > 0 {
                pool.put_burst(&mut burst);
            }
            let fd = x.fd().expect("fd");
            let frames = vec![frame(x.mac(), peer.mac(), 1, 100)];
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let mut pool = Pool::new(4);
                send(&mut peer, &mut pool, &frames);
                peer
            });
            let t0 = Instant::now();
            let ready = crate::port::poll_fds(&[fd], 2000).expect("poll");
            let waited = t0.elapsed();
            peer = sender.join().expect("sender");
            assert_eq!(ready, 1, "{mode:?}");
            assert!(waited < Duration::from_millis(1000), "{mode:?}: {waited:?}");
            assert_eq!(receive(&mut x, &mut pool, 1).len(), 1);
        }
    }

    /// AF_XDP has no checksum metadata: with the sender's tx checksum
    /// offload off (what the testbed sets up), a UDP datagram from the
    /// kernel stack arrives with a complete checksum.
    #[test]
    fn checksums_are_complete_with_tx_offload_off() {
        let ns = NetNs::new("xc");
        let veth = VethPair::new(&ns, &ns);
        let ethtool = std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "ethtool", "-K", &veth.b, "tx", "off",
            ])
            .output()
            .expect("run ethtool");
        assert!(ethtool.status.success(), "{ethtool:?}");
        let mut x = AfXdpPort::open_iface(&veth.a, Some(&ns.path())).expect("open");
        ns.ip(&["addr", "add", "192.0.2.2/24", "dev", &veth.b]);
        ns.ip(&[
            "neigh",
            "add",
            "192.0.2.1",
            "lladdr",
            &x.mac().to_string(),
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
        let got = receive_where(&mut x, &mut pool, 1, is_udp);
        let f = got.first().expect("the UDP frame");
        assert_eq!(f.get(42..47), Some(&b"hello"[..]));
        // Sum of pseudo-header + UDP header and payload folds to 0xffff.
        let udp = &f[34..];
        let mut sum: u32 = 0;
        for c in f[26..34].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        sum += 17 + udp.len() as u32;
        for c in udp.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "UDP checksum complete");
    }

    #[test]
    fn oversize_tx_is_dropped_and_counted() {
        let ns = NetNs::new("xo");
        let veth = VethPair::new(&ns, &ns);
        let mut x = AfXdpPort::open_iface(&veth.a, Some(&ns.path())).expect("open");
        let mut pool = Pool::new(8);
        let big = frame(MacAddr::BROADCAST, x.mac(), 1, 1600);
        let ok = frame(MacAddr::BROADCAST, x.mac(), 2, 1514);
        assert_eq!(
            send(&mut x, &mut pool, &[big, ok]),
            TxOutcome {
                sent: 1,
                dropped: 1
            }
        );
        assert_eq!(x.stats().tx_errors, 1);
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn missing_interface_and_bad_name_are_errors() {
        let ns = NetNs::new("xm");
        let e = AfXdpPort::open_iface("nosuchif0", Some(&ns.path())).expect_err("missing");
        assert!(is_no_such_device(&e), "{e}");
        assert!(e.to_string().contains("nosuchif0"), "{e}");
        assert!(matches!(
            AfXdpPort::open_iface("bad/name", None),
            Err(PortError::BadName { .. })
        ));
    }
}
