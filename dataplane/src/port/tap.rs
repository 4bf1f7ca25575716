//! TAP port: warden attaches to an existing, persistent TAP device (made by
//! `ip tuntap add dev NAME mode tap`) and becomes the "wire" of the
//! workload on the kernel side of it.
//!
//! Attaching uses the `tun` crate's sync API (TUNSETIFF with IFF_TAP |
//! IFF_NO_PI; it attaches to an existing device of that name). The TAP may
//! live in another network namespace: the device is then opened from a
//! short-lived thread that joined that namespace, and the descriptor keeps
//! working from any thread afterwards.
//!
//! A TAP has no ring: receive is one nonblocking `read()` per frame until
//! EAGAIN and transmit one `write()` per frame. That syscall per packet is
//! inherent to TAP (vhost-net or AF_XDP are the ways around it).

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use overlay::MacAddr;
use tun::AbstractDevice;

use super::sys::{self, if_info};
use super::{check_ifname, in_netns, local_mac, Port, PortError, PortStats, TxOutcome};
use crate::buffer::{Burst, Pool};

/// A port on a TAP device.
pub struct TapPort {
    name: String,
    dev: tun::Device,
    mac: MacAddr,
    peer_mac: MacAddr,
    mtu: usize,
    stats: PortStats,
}

impl fmt::Debug for TapPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("fd", &self.dev.as_raw_fd())
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl TapPort {
    /// Attaches to the existing TAP `name`, in the network namespace file
    /// `netns` (e.g. /var/run/netns/NAME) when given, else in the caller's.
    /// Fails rather than create a TAP that does not exist.
    pub fn open(name: &str, netns: Option<&Path>) -> Result<TapPort, PortError> {
        check_ifname(name)?;
        match netns {
            Some(ns) => in_netns(ns, || TapPort::open_here(name)),
            None => TapPort::open_here(name),
        }
    }

    /// Attaches in the calling thread's namespace.
    fn open_here(name: &str) -> Result<TapPort, PortError> {
        let os = |e: sys::OsError| PortError::Os {
            iface: name.to_owned(),
            op: e.op,
            source: e.source,
        };
        // TUNSETIFF would create a missing device: check it exists first.
        let probe = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(os)?;
        let info = if_info(probe.as_raw_fd(), name).map_err(os)?;

        let mut config = tun::Configuration::default();
        config.tun_name(name).layer(tun::Layer::L2);
        // Address, MTU and link state belong to whoever made the TAP.
        config.platform_config(|p| {
            p.ensure_root_privileges(false);
        });
        let tap_err = |source| PortError::Tap {
            iface: name.to_owned(),
            source,
        };
        let dev = tun::create(&config).map_err(tap_err)?;
        dev.set_nonblock().map_err(|e| tap_err(e.into()))?;
        // The device's control socket lives in the TAP's namespace, so the
        // MTU stays readable; fall back to what the probe saw.
        let mtu = dev.mtu().map(usize::from).unwrap_or(info.mtu);
        Ok(TapPort {
            name: name.to_owned(),
            dev,
            mac: local_mac(name),
            peer_mac: info.mac,
            mtu,
            stats: PortStats::default(),
        })
    }

    /// The kernel-side MAC of the TAP (the workload's address, as seen when
    /// warden attached).
    pub fn peer_mac(&self) -> MacAddr {
        self.peer_mac
    }
}

impl Port for TapPort {
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Burst) -> Result<usize, PortError> {
        let mut n = 0;
        while !out.is_full() {
            let Some(mut buf) = pool.get() else {
                break;
            };
            let room = buf.writable_mut().len();
            match self.dev.read(buf.writable_mut()) {
                // A frame filling the whole buffer may have been cut short.
                Ok(len) if len >= room => {
                    self.stats.rx_oversize += 1;
                    pool.put(buf);
                }
                Ok(len) => {
                    if !buf.set_len(len) {
                        pool.put(buf);
                        continue;
                    }
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += len as u64;
                    if let Err(b) = out.push(buf) {
                        pool.put(b);
                        break;
                    }
                    n += 1;
                }
                Err(e) => {
                    pool.put(buf);
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted
                        || n > 0
                    {
                        break;
                    }
                    return Err(PortError::Rx(e));
                }
            }
        }
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut Burst, pool: &mut Pool) -> TxOutcome {
        let mut res = TxOutcome::default();
        for buf in bufs.drain() {
            match self.dev.write(buf.frame()) {
                Ok(_) => {
                    res.sent += 1;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += buf.len() as u64;
                }
                Err(e) => {
                    res.dropped += 1;
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.stats.tx_ring_full += 1;
                    } else {
                        self.stats.tx_errors += 1;
                    }
                }
            }
            pool.put(buf);
        }
        res
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// Warden's own MAC on this port: the TAP's kernel-side MAC belongs to
    /// the workload and warden is the wire, so it uses [`local_mac`] of the
    /// TAP name (locally administered, stable across restarts).
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.dev.as_raw_fd())
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::testns::{unique, NetNs};
    use std::time::{Duration, Instant};

    const KERNEL_IP: [u8; 4] = [192, 0, 2, 1];
    const OUR_IP: [u8; 4] = [192, 0, 2, 2];

    fn arp_request(src: MacAddr) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MacAddr::BROADCAST.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x06]); // ARP
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&OUR_IP);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&KERNEL_IP);
        f
    }

    #[test]
    fn arp_through_a_tap_in_another_namespace() {
        let ns = NetNs::new("tap");
        let tap = unique("t");
        ns.ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", &tap]);
        ns.ip(&["link", "set", &tap, "up"]);

        let mut port = TapPort::open(&tap, Some(&ns.path())).expect("open tap");
        assert_eq!(port.name(), tap);
        assert_eq!(port.mtu(), 1500);
        assert_eq!(port.mac(), local_mac(&tap));
        let kernel_mac = port.peer_mac();
        assert!(kernel_mac.is_unicast());
        assert!(port.fd().is_some());

        let mut pool = Pool::new(64);
        let mut burst = Burst::new();
        // The kernel may drop what arrives while the TAP's carrier is still
        // coming up after the attach: ask again until it answers.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut reply = None;
        let mut sent = 0;
        while reply.is_none() && Instant::now() < deadline {
            let mut b = pool.get().expect("buf");
            assert!(b.copy_from(&arp_request(port.mac())));
            burst.push(b).expect("room");
            assert_eq!(
                port.tx_burst(&mut burst, &mut pool),
                TxOutcome {
                    sent: 1,
                    dropped: 0
                }
            );
            sent += 1;
            // Wait for the kernel's ARP reply (skipping IPv6 chatter).
            let retry = Instant::now() + Duration::from_millis(500);
            while reply.is_none() && Instant::now() < retry {
                if port.rx_burst(&mut pool, &mut burst).expect("rx") == 0 {
                    let _ = crate::port::poll_fds(&[port.fd().expect("fd")], 20);
                }
                for b in burst.drain() {
                    let f = b.frame();
                    if f.get(12..14) == Some(&[0x08, 0x06][..])
                        && f.get(20..22) == Some(&[0, 2][..])
                    {
                        reply = Some(f.to_vec());
                    }
                    pool.put(b);
                }
            }
        }
        let reply = reply.expect("ARP reply from the kernel");
        assert_eq!(&reply[0..6], &port.mac().0, "to us");
        assert_eq!(&reply[6..12], &kernel_mac.0, "from the TAP's MAC");
        assert_eq!(&reply[22..28], &kernel_mac.0, "sender hw");
        assert_eq!(&reply[28..32], &KERNEL_IP, "sender ip");
        assert_eq!(&reply[32..38], &port.mac().0, "target hw");
        assert_eq!(&reply[38..42], &OUR_IP, "target ip");
        assert_eq!(pool.available(), 64);
        let st = port.stats();
        assert_eq!(st.tx_packets, sent);
        assert!(st.rx_packets >= 1);
    }

    #[test]
    fn missing_tap_is_not_created() {
        let ns = NetNs::new("tapm");
        let name = unique("m");
        let e = TapPort::open(&name, Some(&ns.path())).expect_err("missing");
        assert!(e.to_string().contains(&name), "{e}");
        // The failed open left nothing behind.
        assert!(!ns.ip_output(&["-br", "link"]).contains(&name));
    }
}
