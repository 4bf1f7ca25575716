//! In-memory ports: two ends of a wire made of two preallocated queues and
//! one stack of spare buffers, for unit tests and benches in one thread
//! (smoltcp's loopback, in pairs).
//!
//! What one end transmits the other receives. Test code stands on either
//! end too: [`MemoryPort::inject`] puts a frame on the wire toward an end
//! (it will be received there) and [`MemoryPort::drain`] takes the frames an
//! end transmitted (before its peer receives them).

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;

use overlay::MacAddr;

use super::{local_mac, Port, PortError, PortStats, TxOutcome};
use crate::buffer::{Buf, Burst, Pool, BUF_SIZE};

/// Both directions of a wire: two fixed-capacity queues of frames in
/// buffers and one stack of spare buffers, all allocated once. The ports
/// trade buffers with it instead of copying bytes (DPDK's net_ring passes
/// mbufs the same way): a receiving end takes a queued buffer and leaves
/// an empty one from its pool in exchange; a transmitting end queues its
/// buffer and takes a spare back into its pool. So the wire always owns
/// `2 * capacity` buffers, queued or spare, and a pool never grows or
/// shrinks. The spares are one last-in-first-out stack for both
/// directions, as a DPDK mempool's per-core cache is: a frame received
/// from one direction and sent out the other comes back in the buffer the
/// driver just freed, so a steady load keeps reusing a burst's worth of
/// buffers (cache-warm) instead of rotating through all of them. Only test
/// drivers (`inject`, `send`, `drain`, `recv_all`) copy bytes.
#[derive(Debug)]
struct Wire {
    /// Frames queued in each direction (index: the receiving end).
    /// Oldest first; a receiver takes from the front in bulk (a burst is
    /// short, so moving the rest down is cheaper than a ring's wrap).
    queues: [Vec<Buf>; 2],
    spare: Vec<Buf>,
    /// Frames one direction holds at most.
    capacity: usize,
}

impl Wire {
    fn new(capacity: usize) -> Wire {
        let capacity = capacity.max(1);
        let mut spare = Vec::with_capacity(2 * capacity);
        spare.resize_with(2 * capacity, Buf::new);
        Wire {
            // Never grow past `capacity`: pushes check it.
            queues: [Vec::with_capacity(capacity), Vec::with_capacity(capacity)],
            spare,
            capacity,
        }
    }

    fn len(&self, to: usize) -> usize {
        self.queues[to].len()
    }

    /// Queues a copy of `frame` toward end `to`. False when that
    /// direction is full or the frame longer than `BUF_SIZE`.
    fn push(&mut self, to: usize, frame: &[u8]) -> bool {
        if frame.len() > BUF_SIZE || self.queues[to].len() >= self.capacity {
            return false;
        }
        let Some(mut buf) = self.spare.pop() else {
            return false;
        };
        if !buf.copy_from(frame) {
            self.spare.push(buf);
            return false;
        }
        self.queues[to].push(buf);
        true
    }

    /// Passes every frame toward end `to` to `f`, oldest first, removes
    /// them and returns how many.
    fn drain_with(&mut self, to: usize, mut f: impl FnMut(&[u8])) -> usize {
        let n = self.queues[to].len();
        for mut buf in self.queues[to].drain(..) {
            f(buf.frame());
            buf.reset();
            self.spare.push(buf);
        }
        n
    }
}

/// One end of an in-memory wire.
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    mac: MacAddr,
    mtu: usize,
    wire: Rc<RefCell<Wire>>,
    /// This end's index on the wire: frames toward it are queued there;
    /// it transmits toward the other.
    end: usize,
    stats: PortStats,
}

impl MemoryPort {
    /// Two connected ends; each direction holds up to `capacity` frames.
    /// MACs are [`local_mac`] of the names, MTU 1500.
    pub fn pair(name_a: &str, name_b: &str, capacity: usize) -> (MemoryPort, MemoryPort) {
        let wire = Rc::new(RefCell::new(Wire::new(capacity)));
        let end = |name: &str, end: usize| MemoryPort {
            name: name.to_owned(),
            mac: local_mac(name),
            mtu: 1500,
            wire: Rc::clone(&wire),
            end,
            stats: PortStats::default(),
        };
        (end(name_a, 0), end(name_b, 1))
    }

    /// Sets the MAC this end reports.
    pub fn set_mac(&mut self, mac: MacAddr) {
        self.mac = mac;
    }

    /// Sets the MTU this end reports (frames are not checked against it).
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Puts `frame` on the wire toward this end, as if the peer sent it.
    /// False when the ring is full or the frame longer than `BUF_SIZE`.
    pub fn inject(&self, frame: &[u8]) -> bool {
        self.wire.borrow_mut().push(self.end, frame)
    }

    /// Takes every frame this end transmitted that nobody received yet,
    /// oldest first, and returns how many.
    pub fn drain(&self, f: impl FnMut(&[u8])) -> usize {
        self.wire.borrow_mut().drain_with(1 - self.end, f)
    }

    /// Transmits `frame` from this end without a pool, as a test or bench
    /// driver does: the other end receives it. False when the ring is full.
    pub fn send(&self, frame: &[u8]) -> bool {
        self.wire.borrow_mut().push(1 - self.end, frame)
    }

    /// Takes every frame the other end transmitted that this end has not
    /// received yet, oldest first, and returns how many.
    pub fn recv_all(&self, f: impl FnMut(&[u8])) -> usize {
        self.wire.borrow_mut().drain_with(self.end, f)
    }

    /// Frames waiting to be received by this end.
    pub fn rx_pending(&self) -> usize {
        self.wire.borrow().len(self.end)
    }
}

impl Port for MemoryPort {
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Burst) -> Result<usize, PortError> {
        let mut wire = self.wire.borrow_mut();
        let wire = &mut *wire;
        // Trade in bulk: `n` empties from the pool become spares, `n`
        // queued frames go into the burst (the counters once per burst).
        let n = out.room().min(wire.len(self.end)).min(pool.available());
        pool.lend(n, &mut wire.spare);
        let mut bytes = 0u64;
        for buf in out.take_front(&mut wire.queues[self.end], n) {
            // A buffer the other end transmitted may start anywhere in
            // its headroom (encap prepended, decap trimmed).
            buf.as_received();
            bytes += buf.len() as u64;
        }
        self.stats.rx_packets += n as u64;
        self.stats.rx_bytes += bytes;
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut Burst, pool: &mut Pool) -> TxOutcome {
        let mut wire = self.wire.borrow_mut();
        let wire = &mut *wire;
        let to = 1 - self.end;
        // The wire carries frames of up to BUF_SIZE bytes, as a slot did:
        // longer ones are dropped (never the case for a burst the engine
        // built, so checked once for the whole burst first).
        let mut too_long = 0u64;
        if bufs.iter().any(|b| b.len() > BUF_SIZE) {
            bufs.retain_or_free(pool, |b| {
                let fits = b.len() <= BUF_SIZE;
                too_long += u64::from(!fits);
                fits
            });
        }
        // Each frame queued takes a spare back into the pool, in bulk; the
        // wire owns as many buffers as before. What does not fit is dropped.
        let room = wire.capacity.saturating_sub(wire.queues[to].len());
        let sent = bufs.len().min(room).min(wire.spare.len());
        let bytes: u64 = bufs[..sent].iter().map(|b| b.len() as u64).sum();
        let mut drained = bufs.drain();
        wire.queues[to].extend(drained.by_ref().take(sent));
        let full = drained.len() as u64;
        for buf in drained {
            pool.put(buf);
        }
        pool.take_back(sent, &mut wire.spare);
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes;
        self.stats.tx_errors += too_long;
        self.stats.tx_ring_full += full;
        TxOutcome {
            sent,
            dropped: (too_long + full) as usize,
        }
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
        None
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::HEADROOM;

    fn burst_of(pool: &mut Pool, frames: &[&[u8]]) -> Burst {
        let mut b = Burst::new();
        for f in frames {
            let mut buf = pool.get().expect("buf");
            assert!(buf.copy_from(f));
            b.push(buf).expect("room");
        }
        b
    }

    #[test]
    fn tx_on_one_end_is_rx_on_the_other() {
        let (mut a, mut b) = MemoryPort::pair("a", "b", 8);
        let mut pool = Pool::new(16);
        let mut burst = burst_of(&mut pool, &[&[1, 2, 3], &[4; 60]]);
        assert_eq!(
            a.tx_burst(&mut burst, &mut pool),
            TxOutcome {
                sent: 2,
                dropped: 0
            }
        );
        assert!(burst.is_empty());
        assert_eq!(pool.available(), 16);
        assert_eq!(b.rx_pending(), 2);

        let mut got = Burst::new();
        assert_eq!(b.rx_burst(&mut pool, &mut got).expect("rx"), 2);
        assert_eq!(got[0].frame(), &[1, 2, 3]);
        assert_eq!(got[1].frame(), &[4; 60]);
        assert_eq!(got[0].headroom(), HEADROOM);
        assert_eq!(b.rx_burst(&mut pool, &mut got).expect("rx"), 0);
        // Nothing came back toward a.
        let mut none = Burst::new();
        assert_eq!(a.rx_burst(&mut pool, &mut none).expect("rx"), 0);
        pool.put_burst(&mut got);

        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.tx_packets, sa.tx_bytes), (2, 63));
        assert_eq!((sb.rx_packets, sb.rx_bytes), (2, 63));
        assert_eq!(a.fd(), None);
        assert_ne!(a.mac(), b.mac());
        assert_eq!((a.name(), b.name(), a.mtu()), ("a", "b", 1500));
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let (mut a, b) = MemoryPort::pair("a", "b", 2);
        let mut pool = Pool::new(8);
        let mut burst = burst_of(&mut pool, &[&[1], &[2], &[3]]);
        assert_eq!(
            a.tx_burst(&mut burst, &mut pool),
            TxOutcome {
                sent: 2,
                dropped: 1
            }
        );
        assert_eq!(a.stats().tx_ring_full, 1);
        assert_eq!(pool.available(), 8);
        let mut seen = Vec::new();
        assert_eq!(b.drain(|_| ()), 0, "b transmitted nothing");
        assert_eq!(a.drain(|f| seen.push(f.to_vec())), 2);
        assert_eq!(seen, vec![vec![1], vec![2]]);
    }

    #[test]
    fn rx_stops_at_burst_capacity_and_pool_exhaustion() {
        let (mut a, _b) = MemoryPort::pair("a", "b", 200);
        for i in 0..100u8 {
            assert!(a.inject(&[i; 64]));
        }
        let mut pool = Pool::new(70);
        let mut out = Burst::new();
        assert_eq!(
            a.rx_burst(&mut pool, &mut out).expect("rx"),
            crate::buffer::BURST
        );
        assert!(out.is_full());
        assert_eq!(a.rx_burst(&mut pool, &mut out).expect("rx"), 0);
        pool.put_burst(&mut out);
        // Only 3 buffers left: a partial burst, frames stay queued.
        let mut hold: Vec<Buf> = (0..67).map(|_| pool.get().expect("buf")).collect();
        assert_eq!(a.rx_burst(&mut pool, &mut out).expect("rx"), 3);
        assert_eq!(a.rx_pending(), 100 - 64 - 3);
        assert_eq!(out[0].frame(), &[64u8; 64]);
        for b in hold.drain(..) {
            pool.put(b);
        }
    }

    #[test]
    fn inject_refuses_oversize_and_full() {
        let (a, _b) = MemoryPort::pair("a", "b", 1);
        assert!(!a.inject(&vec![0; BUF_SIZE + 1]));
        assert!(a.inject(&vec![0; BUF_SIZE]));
        assert!(!a.inject(&[1]));
    }

    #[test]
    fn buffers_are_traded_not_copied_and_arrive_as_received() {
        let (mut a, mut b) = MemoryPort::pair("a", "b", 4);
        let (mut pa, mut pb) = (Pool::new(8), Pool::new(8));
        let mut burst = Burst::new();
        let mut buf = pa.get().expect("buf");
        assert!(buf.copy_from(&[7; 40]));
        // As encap leaves it: a header prepended into the headroom, flagged.
        buf.prepend(50).expect("headroom").fill(9);
        buf.flags.insert(crate::buffer::BufFlags::CSUM_NOT_READY);
        buf.port = 3;
        burst.push(buf).expect("room");
        assert_eq!(a.tx_burst(&mut burst, &mut pa).sent, 1);
        // The wire gave a spare back: the pool is whole again.
        assert_eq!(pa.available(), 8);
        let mut got = Burst::new();
        assert_eq!(b.rx_burst(&mut pb, &mut got).expect("rx"), 1);
        assert_eq!(pb.available(), 7);
        assert_eq!(got[0].headroom(), HEADROOM);
        assert_eq!(got[0].len(), 90);
        assert_eq!(&got[0].frame()[..50], &[9; 50]);
        assert_eq!(&got[0].frame()[50..], &[7; 40]);
        assert_eq!(
            (got[0].port, got[0].flags),
            (0, crate::buffer::BufFlags::NONE)
        );
        pb.put_burst(&mut got);
        assert_eq!(pb.available(), 8);
        // Oversize frames are refused and counted, the buffer kept.
        let mut big = pa.get().expect("buf");
        assert!(big.copy_from(&vec![1; BUF_SIZE]));
        big.prepend(10).expect("headroom");
        burst.push(big).expect("room");
        assert_eq!(a.tx_burst(&mut burst, &mut pa).dropped, 1);
        assert_eq!((a.stats().tx_errors, pa.available()), (1, 8));
    }

    #[test]
    fn wraps_around_many_times() {
        let (mut a, mut b) = MemoryPort::pair("a", "b", 3);
        let mut pool = Pool::new(4);
        let mut out = Burst::new();
        for i in 0..20u8 {
            let mut burst = burst_of(&mut pool, &[&[i, i]]);
            assert_eq!(a.tx_burst(&mut burst, &mut pool).sent, 1);
            assert_eq!(b.rx_burst(&mut pool, &mut out).expect("rx"), 1);
            assert_eq!(out[0].frame(), &[i, i]);
            pool.put_burst(&mut out);
        }
    }
}
