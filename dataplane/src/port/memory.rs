//! In-memory ports: two ends of a wire made of two preallocated rings, for
//! unit tests and benches in one thread (smoltcp's loopback, in pairs).
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
use crate::buffer::{Burst, Pool, BUF_SIZE};

/// A fixed-capacity ring of frame slots, each `BUF_SIZE` bytes, allocated
/// once; pushing copies bytes into a slot.
#[derive(Debug)]
struct Ring {
    slots: Box<[u8]>,
    lens: Box<[u16]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        let capacity = capacity.max(1);
        Ring {
            slots: vec![0u8; capacity * BUF_SIZE].into_boxed_slice(),
            lens: vec![0u16; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// False when the ring is full or the frame longer than a slot.
    fn push(&mut self, frame: &[u8]) -> bool {
        if self.len >= self.capacity() || frame.len() > BUF_SIZE {
            return false;
        }
        // head < capacity and len < capacity here: one wrap at most (a
        // compare, not a division per frame).
        let mut i = self.head + self.len;
        if i >= self.capacity() {
            i -= self.capacity();
        }
        let (Some(slot), Some(len)) = (
            self.slots.get_mut(i * BUF_SIZE..i * BUF_SIZE + frame.len()),
            self.lens.get_mut(i),
        ) else {
            return false;
        };
        slot.copy_from_slice(frame);
        *len = frame.len() as u16;
        self.len += 1;
        true
    }

    /// Passes the oldest frame to `f` and removes it.
    fn pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        let n = usize::from(*self.lens.get(i)?);
        let r = f(self.slots.get(i * BUF_SIZE..i * BUF_SIZE + n)?);
        self.head += 1;
        if self.head == self.capacity() {
            self.head = 0;
        }
        self.len -= 1;
        Some(r)
    }
}

/// One end of an in-memory wire.
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    mac: MacAddr,
    mtu: usize,
    /// Frames toward this end.
    rx: Rc<RefCell<Ring>>,
    /// Frames from this end.
    tx: Rc<RefCell<Ring>>,
    stats: PortStats,
}

impl MemoryPort {
    /// Two connected ends; each direction holds up to `capacity` frames.
    /// MACs are [`local_mac`] of the names, MTU 1500.
    pub fn pair(name_a: &str, name_b: &str, capacity: usize) -> (MemoryPort, MemoryPort) {
        let ab = Rc::new(RefCell::new(Ring::new(capacity)));
        let ba = Rc::new(RefCell::new(Ring::new(capacity)));
        let end = |name: &str, rx: &Rc<RefCell<Ring>>, tx: &Rc<RefCell<Ring>>| MemoryPort {
            name: name.to_owned(),
            mac: local_mac(name),
            mtu: 1500,
            rx: Rc::clone(rx),
            tx: Rc::clone(tx),
            stats: PortStats::default(),
        };
        (end(name_a, &ba, &ab), end(name_b, &ab, &ba))
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
        self.rx.borrow_mut().push(frame)
    }

    /// Takes every frame this end transmitted that nobody received yet,
    /// oldest first, and returns how many.
    pub fn drain(&self, mut f: impl FnMut(&[u8])) -> usize {
        let mut ring = self.tx.borrow_mut();
        let mut n = 0;
        while ring.pop_with(&mut f).is_some() {
            n += 1;
        }
        n
    }

    /// Transmits `frame` from this end without a pool, as a test or bench
    /// driver does: the other end receives it. False when the ring is full.
    pub fn send(&self, frame: &[u8]) -> bool {
        self.tx.borrow_mut().push(frame)
    }

    /// Takes every frame the other end transmitted that this end has not
    /// received yet, oldest first, and returns how many.
    pub fn recv_all(&self, mut f: impl FnMut(&[u8])) -> usize {
        let mut ring = self.rx.borrow_mut();
        let mut n = 0;
        while ring.pop_with(&mut f).is_some() {
            n += 1;
        }
        n
    }

    /// Frames waiting to be received by this end.
    pub fn rx_pending(&self) -> usize {
        self.rx.borrow().len
    }
}

impl Port for MemoryPort {
    fn rx_burst(&mut self, pool: &mut Pool, out: &mut Burst) -> Result<usize, PortError> {
        let mut ring = self.rx.borrow_mut();
        let mut n = 0;
        while !out.is_full() && ring.len > 0 {
            let Some(mut buf) = pool.get() else {
                break;
            };
            // Slots hold at most BUF_SIZE bytes, so the copy always fits.
            let copied = ring.pop_with(|f| buf.copy_from(f)).unwrap_or(false);
            if !copied {
                self.stats.rx_oversize += 1;
                pool.put(buf);
                continue;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += buf.len() as u64;
            if let Err(b) = out.push(buf) {
                pool.put(b);
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, bufs: &mut Burst, pool: &mut Pool) -> TxOutcome {
        let mut ring = self.tx.borrow_mut();
        let mut res = TxOutcome::default();
        for buf in bufs.drain() {
            if ring.push(buf.frame()) {
                res.sent += 1;
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += buf.len() as u64;
            } else {
                res.dropped += 1;
                if buf.len() > BUF_SIZE {
                    self.stats.tx_errors += 1;
                } else {
                    self.stats.tx_ring_full += 1;
                }
            }
            pool.put(buf);
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
        None
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buf, HEADROOM};

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
