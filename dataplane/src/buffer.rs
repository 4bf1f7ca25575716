//! Packet buffers, the buffer pool and fixed-size bursts.
//!
//! Every buffer is allocated once, when its [`Pool`] is built; afterwards
//! buffers only move between the pool, bursts and ports, so the packet path
//! never allocates. A buffer keeps [`HEADROOM`] bytes free in front of the
//! received frame so that VXLAN encapsulation (50 bytes of outer headers, 54
//! with an outer 802.1Q tag) is written in place with [`Buf::prepend`].

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Bytes kept free in front of a received frame for encapsulation.
pub const HEADROOM: usize = 128;
/// Largest frame a buffer holds when it starts at [`HEADROOM`].
pub const BUF_SIZE: usize = 2048;
/// Total bytes of one buffer.
pub const BUF_CAPACITY: usize = HEADROOM + BUF_SIZE;
/// Most buffers one burst carries (DESIGN.md: bursts of 32-64).
pub const BURST: usize = 64;

/// Per-buffer flags set by the port that received the frame.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BufFlags(u8);

impl BufFlags {
    /// No flag set.
    pub const NONE: BufFlags = BufFlags(0);
    /// The L4 checksum is partial (only the pseudo-header sum is filled in):
    /// the kernel handed us a frame whose checksum offload has not run yet
    /// (AF_PACKET's TP_STATUS_CSUMNOTREADY, typical on veth). Whoever sends
    /// it anywhere but back into the same host must complete the checksum.
    pub const CSUM_NOT_READY: BufFlags = BufFlags(1);
    /// The kernel had verified the L4 checksum (TP_STATUS_CSUM_VALID).
    pub const CSUM_VALID: BufFlags = BufFlags(2);

    /// Raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: BufFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: BufFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: BufFlags) {
        self.0 &= !other.0;
    }
}

impl fmt::Debug for BufFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        if self.contains(BufFlags::CSUM_NOT_READY) {
            set.entry(&"CSUM_NOT_READY");
        }
        if self.contains(BufFlags::CSUM_VALID) {
            set.entry(&"CSUM_VALID");
        }
        set.finish()
    }
}

/// One packet buffer: [`BUF_CAPACITY`] bytes allocated once, holding one
/// frame at `data[start..start + len]`. Offsets are `u16` (the capacity
/// is below 64 KiB): a buffer moves as two words, and `start + len`
/// cannot overflow, so taking the frame is one bounds check.
pub struct Buf {
    /// A fixed-size array: a thin pointer, bounds checked against a
    /// constant.
    data: Box<[u8; BUF_CAPACITY]>,
    start: u16,
    len: u16,
    /// Index of the port the frame was received on.
    pub port: u16,
    /// What the receiving port knows about the frame.
    pub flags: BufFlags,
}

// Offsets fit in `u16`, and every sum of two of them fits in `usize`.
const _: () = assert!(BUF_CAPACITY <= u16::MAX as usize);

impl Buf {
    /// Allocates one empty buffer. Only pools (and tests) call this: the
    /// packet path takes buffers from a [`Pool`].
    pub fn new() -> Buf {
        Buf {
            data: Box::new([0u8; BUF_CAPACITY]),
            start: HEADROOM as u16,
            len: 0,
            port: 0,
            flags: BufFlags::NONE,
        }
    }

    #[inline(always)]
    fn start(&self) -> usize {
        usize::from(self.start)
    }

    #[inline(always)]
    fn end(&self) -> usize {
        usize::from(self.start) + usize::from(self.len)
    }

    /// Sets the frame to `data[start..start + len]`; callers keep it
    /// within the buffer (so both fit in `u16`).
    #[inline(always)]
    fn set(&mut self, start: usize, len: usize) {
        debug_assert!(start + len <= BUF_CAPACITY);
        self.start = start as u16;
        self.len = len as u16;
    }

    /// The frame.
    #[inline]
    pub fn frame(&self) -> &[u8] {
        self.data.get(self.start()..self.end()).unwrap_or(&[])
    }

    /// The frame, writable.
    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.start(), self.end());
        self.data.get_mut(start..end).unwrap_or(&mut [])
    }

    /// Frame length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when the buffer holds no frame bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start()
    }

    /// Free bytes after the frame.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.data.len().saturating_sub(self.end())
    }

    /// Grows the frame by `n` bytes at the front (into the headroom) and
    /// returns exactly those `n` new bytes, for outer headers. Their content
    /// is whatever the buffer held before. `None` (and no change) when the
    /// headroom is smaller than `n`.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start().checked_sub(n)?;
        self.set(start, self.len() + n);
        self.data.get_mut(start..start + n)
    }

    /// [`Buf::prepend`] of a fixed size, as an array (the caller writes a
    /// fixed-size header without further bounds checks).
    #[inline]
    pub fn prepend_array<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        let start = self.start().checked_sub(N)?;
        let len = self.len() + N;
        self.set(start, len);
        self.data.get_mut(start..)?.first_chunk_mut::<N>()
    }

    /// Grows the frame by `n` bytes at the back (into the tailroom) and
    /// returns those new bytes. `None` (and no change) without room.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let end = self.end();
        self.set(self.start(), self.len() + n);
        self.data.get_mut(end..end + n)
    }

    /// Drops `n` bytes from the front of the frame (decapsulation); they
    /// become headroom. Returns false (and changes nothing) when the frame
    /// is shorter than `n`.
    #[inline]
    pub fn trim_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.set(self.start() + n, self.len() - n);
        true
    }

    /// Sets the frame length, keeping its start. Returns false (and changes
    /// nothing) when `len` does not fit before the end of the buffer.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.data.len() - self.start() {
            return false;
        }
        self.set(self.start(), len);
        true
    }

    /// Everything from the frame start to the end of the buffer: the frame
    /// followed by the tailroom. A receiver writes here and then calls
    /// [`Buf::set_len`].
    #[inline]
    pub fn writable_mut(&mut self) -> &mut [u8] {
        let start = self.start();
        self.data.get_mut(start..).unwrap_or(&mut [])
    }

    /// Replaces the content with `frame`, starting at [`HEADROOM`]. Returns
    /// false (and leaves the buffer empty) when the frame is longer than
    /// [`BUF_SIZE`].
    #[must_use]
    pub fn copy_from(&mut self, frame: &[u8]) -> bool {
        match self.data.get_mut(HEADROOM..HEADROOM + frame.len()) {
            Some(dst) => {
                dst.copy_from_slice(frame);
                self.set(HEADROOM, frame.len());
                true
            }
            None => {
                self.set(HEADROOM, 0);
                false
            }
        }
    }

    /// Makes the buffer look freshly received: the frame moved to start at
    /// [`HEADROOM`] (when it does not already), port 0, no flags. A port
    /// that hands on buffers another port transmitted calls this.
    #[inline]
    pub fn as_received(&mut self) {
        if self.start() != HEADROOM && HEADROOM + self.len() <= self.data.len() {
            let (start, end) = (self.start(), self.end());
            self.data.copy_within(start..end, HEADROOM);
            self.set(HEADROOM, self.len());
        }
        self.port = 0;
        self.flags = BufFlags::NONE;
    }

    /// Empties the buffer: frame start back at [`HEADROOM`], length 0,
    /// port 0, no flags.
    #[inline]
    pub fn reset(&mut self) {
        self.set(HEADROOM, 0);
        self.port = 0;
        self.flags = BufFlags::NONE;
    }
}

impl Default for Buf {
    fn default() -> Buf {
        Buf::new()
    }
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buf")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("port", &self.port)
            .field("flags", &self.flags)
            .finish()
    }
}

/// A stack of buffers allocated at start. `get` and `put` never allocate;
/// the caller counts exhaustion (a `None` from `get`).
pub struct Pool {
    free: Vec<Buf>,
    capacity: usize,
}

impl Pool {
    /// Allocates `n` buffers of [`BUF_CAPACITY`] bytes.
    pub fn new(n: usize) -> Pool {
        let mut free = Vec::with_capacity(n);
        free.resize_with(n, Buf::new);
        Pool { free, capacity: n }
    }

    /// Takes an empty buffer, or `None` when the pool is exhausted.
    #[inline]
    pub fn get(&mut self) -> Option<Buf> {
        self.free.pop()
    }

    /// Returns a buffer (emptied here). A buffer beyond the pool's capacity
    /// (one that never came from it) is freed rather than grow the stack.
    #[inline]
    pub fn put(&mut self, mut buf: Buf) {
        if self.free.len() < self.capacity {
            buf.reset();
            self.free.push(buf);
        }
    }

    /// Returns every buffer of `burst` and leaves it empty.
    #[inline]
    pub fn put_burst(&mut self, burst: &mut Burst) {
        for buf in burst.bufs.drain(..) {
            if self.free.len() < self.capacity {
                let mut buf = buf;
                buf.reset();
                self.free.push(buf);
            }
        }
    }

    /// Moves `n` empty buffers (at most what is available) onto `to`:
    /// a port that trades buffers gives these in exchange for `n` it
    /// receives (see [`Pool::take_back`]).
    #[inline]
    pub fn lend(&mut self, n: usize, to: &mut Vec<Buf>) {
        let keep = self.free.len().saturating_sub(n);
        to.extend(self.free.drain(keep..));
    }

    /// Takes back, emptied, the last `n` buffers of `from` (the exchange
    /// for `n` a port transmitted), as far as the pool has room.
    #[inline]
    pub fn take_back(&mut self, n: usize, from: &mut Vec<Buf>) {
        let n = n
            .min(from.len())
            .min(self.capacity.saturating_sub(self.free.len()));
        let at = from.len() - n;
        self.free.extend(from.drain(at..).map(|mut b| {
            b.reset();
            b
        }));
    }

    /// Buffers ready to be taken.
    #[inline]
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers the pool was built with.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("available", &self.free.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Up to [`BURST`] buffers, with its storage reserved at creation so that
/// pushing never allocates. Derefs to `[Buf]` for iteration and indexing.
pub struct Burst {
    bufs: Vec<Buf>,
}

impl Burst {
    /// An empty burst with room for [`BURST`] buffers.
    pub fn new() -> Burst {
        Burst {
            bufs: Vec::with_capacity(BURST),
        }
    }

    /// Adds a buffer, or hands it back when the burst is full.
    #[inline]
    pub fn push(&mut self, buf: Buf) -> Result<(), Buf> {
        let len = self.bufs.len();
        if len >= BURST {
            return Err(buf);
        }
        if len == self.bufs.capacity() {
            self.reserve_burst();
        }
        self.bufs.push(buf);
        Ok(())
    }

    /// A `Default` placeholder put to use: its storage, once (kept out of
    /// line: `push` is on every packet's path).
    #[cold]
    #[inline(never)]
    fn reserve_burst(&mut self) {
        self.bufs.reserve_exact(BURST - self.bufs.len());
    }

    /// Moves the first `n` buffers of `from` (at most its length and this
    /// burst's room) to the end of the burst, as they are, and returns the
    /// new ones, for a port to finish receiving.
    #[inline]
    pub fn take_front(&mut self, from: &mut Vec<Buf>, n: usize) -> &mut [Buf] {
        if self.bufs.capacity() < BURST {
            self.reserve_burst();
        }
        let n = n.min(from.len()).min(self.room());
        let before = self.bufs.len();
        self.bufs.extend(from.drain(..n));
        &mut self.bufs[before..]
    }

    /// Removes the last buffer.
    #[inline]
    pub fn pop(&mut self) -> Option<Buf> {
        self.bufs.pop()
    }

    /// Removes the buffer at `index`, moving the last one into its place
    /// (order is not kept). `None` when out of range.
    #[inline]
    pub fn swap_remove(&mut self, index: usize) -> Option<Buf> {
        if index < self.bufs.len() {
            Some(self.bufs.swap_remove(index))
        } else {
            None
        }
    }

    /// Takes every buffer out, in order, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, Buf> {
        self.bufs.drain(..)
    }

    /// Keeps the buffers for which `keep` is true, in order; the others go
    /// back to `pool`.
    pub fn retain_or_free(&mut self, pool: &mut Pool, mut keep: impl FnMut(&mut Buf) -> bool) {
        let mut i = 0;
        while i < self.bufs.len() {
            let keep_it = match self.bufs.get_mut(i) {
                Some(b) => keep(b),
                None => break,
            };
            if keep_it {
                i += 1;
            } else {
                pool.put(self.bufs.remove(i));
            }
        }
    }

    /// Room left before the burst is full.
    #[inline]
    pub fn free(&self) -> usize {
        BURST - self.bufs.len()
    }

    /// True when no more buffers fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= BURST
    }

    /// Buffers it can still take.
    #[inline]
    pub fn room(&self) -> usize {
        BURST.saturating_sub(self.bufs.len())
    }
}

/// An empty placeholder without storage, so that `std::mem::take` on a
/// burst costs no allocation; its first `push` reserves [`BURST`] slots.
impl Default for Burst {
    fn default() -> Burst {
        Burst { bufs: Vec::new() }
    }
}

impl Deref for Burst {
    type Target = [Buf];
    #[inline]
    fn deref(&self) -> &[Buf] {
        &self.bufs
    }
}

impl DerefMut for Burst {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Buf] {
        &mut self.bufs
    }
}

impl fmt::Debug for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst")
            .field("len", &self.bufs.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_buf_is_empty_with_headroom() {
        let b = Buf::new();
        assert!(b.is_empty());
        assert_eq!(b.headroom(), HEADROOM);
        assert_eq!(b.tailroom(), BUF_SIZE);
        assert_eq!(b.frame(), &[] as &[u8]);
    }

    #[test]
    fn copy_prepend_trim_roundtrip() {
        let mut b = Buf::new();
        assert!(b.copy_from(&[1, 2, 3, 4]));
        let hdr = b.prepend(50).expect("headroom");
        assert_eq!(hdr.len(), 50);
        hdr.fill(0xaa);
        assert_eq!(b.len(), 54);
        assert_eq!(b.headroom(), HEADROOM - 50);
        assert_eq!(&b.frame()[50..], &[1, 2, 3, 4]);
        assert!(b.frame()[..50].iter().all(|&x| x == 0xaa));
        assert!(b.trim_front(50));
        assert_eq!(b.frame(), &[1, 2, 3, 4]);
        assert_eq!(b.headroom(), HEADROOM);
    }

    #[test]
    fn a_buffer_is_two_words() {
        // Buffers move between the vector, bursts and the pool per packet.
        assert_eq!(std::mem::size_of::<Option<Buf>>(), 16);
    }

    #[test]
    fn prepend_array_is_prepend_of_a_fixed_size() {
        let mut b = Buf::new();
        assert!(b.copy_from(&[9; 10]));
        *b.prepend_array::<4>().unwrap() = [1, 2, 3, 4];
        assert_eq!(b.frame(), &[1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
        assert_eq!(b.headroom(), HEADROOM - 4);
        assert!(b.prepend_array::<{ HEADROOM - 3 }>().is_none());
        assert_eq!(b.len(), 14);
        assert!(b.prepend_array::<{ HEADROOM - 4 }>().is_some());
        assert_eq!(b.headroom(), 0);
        assert!(b.prepend_array::<1>().is_none());
    }

    #[test]
    fn prepend_beyond_headroom_fails_without_change() {
        let mut b = Buf::new();
        assert!(b.copy_from(&[9; 10]));
        assert!(b.prepend(HEADROOM + 1).is_none());
        assert_eq!(b.len(), 10);
        assert_eq!(b.headroom(), HEADROOM);
        assert!(b.prepend(HEADROOM).is_some());
        assert_eq!(b.headroom(), 0);
        assert!(b.prepend(1).is_none());
    }

    #[test]
    fn trim_and_set_len_bounds() {
        let mut b = Buf::new();
        assert!(b.copy_from(&[7; 20]));
        assert!(!b.trim_front(21));
        assert_eq!(b.len(), 20);
        assert!(b.trim_front(20));
        assert!(b.is_empty());
        b.reset();
        assert!(b.set_len(BUF_SIZE));
        assert_eq!(b.tailroom(), 0);
        assert!(!b.set_len(BUF_SIZE + 1));
        assert_eq!(b.len(), BUF_SIZE);
        assert!(b.append(1).is_none());
        assert!(b.set_len(10));
        assert_eq!(b.append(5).map(|s| s.len()), Some(5));
        assert_eq!(b.len(), 15);
    }

    #[test]
    fn copy_from_too_long_leaves_empty() {
        let mut b = Buf::new();
        assert!(b.copy_from(&[0; BUF_SIZE]));
        assert!(!b.copy_from(&[0; BUF_SIZE + 1]));
        assert!(b.is_empty());
    }

    #[test]
    fn writable_covers_frame_and_tailroom() {
        let mut b = Buf::new();
        let w = b.writable_mut();
        assert_eq!(w.len(), BUF_SIZE);
        w[..3].copy_from_slice(&[5, 6, 7]);
        assert!(b.set_len(3));
        assert_eq!(b.frame(), &[5, 6, 7]);
    }

    #[test]
    fn reset_clears_port_and_flags() {
        let mut b = Buf::new();
        assert!(b.copy_from(&[1; 30]));
        let _ = b.prepend(10);
        b.port = 3;
        b.flags.insert(BufFlags::CSUM_NOT_READY);
        b.reset();
        assert_eq!((b.len(), b.headroom(), b.port), (0, HEADROOM, 0));
        assert_eq!(b.flags, BufFlags::NONE);
    }

    #[test]
    fn flags_insert_remove() {
        let mut f = BufFlags::NONE;
        f.insert(BufFlags::CSUM_NOT_READY);
        assert!(f.contains(BufFlags::CSUM_NOT_READY));
        assert!(!f.contains(BufFlags::CSUM_VALID));
        f.remove(BufFlags::CSUM_NOT_READY);
        assert_eq!(f.bits(), 0);
    }

    #[test]
    fn pool_get_put_and_exhaustion() {
        let mut p = Pool::new(3);
        assert_eq!((p.available(), p.capacity()), (3, 3));
        let a = p.get().expect("1");
        let b = p.get().expect("2");
        let mut c = p.get().expect("3");
        assert!(p.get().is_none());
        assert!(c.copy_from(&[1, 2]));
        p.put(a);
        p.put(b);
        p.put(c);
        assert_eq!(p.available(), 3);
        // Returned buffers come back empty.
        assert!(p.get().expect("again").is_empty());
        // A stranger beyond capacity is dropped, not pushed.
        p.put(Buf::new());
        p.put(Buf::new());
        assert_eq!(p.available(), 3);
    }

    #[test]
    fn burst_capacity_is_fixed() {
        let mut p = Pool::new(BURST + 1);
        let mut burst = Burst::new();
        for _ in 0..BURST {
            assert!(burst.push(p.get().expect("buf")).is_ok());
        }
        assert!(burst.is_full());
        assert_eq!(burst.free(), 0);
        let extra = p.get().expect("extra");
        assert!(burst.push(extra).is_err());
        assert_eq!(burst.len(), BURST);
        p.put_burst(&mut burst);
        assert!(burst.is_empty());
        assert_eq!(p.available(), BURST);
    }

    #[test]
    fn default_burst_is_a_free_placeholder_that_still_works() {
        let mut slot = Burst::new();
        let real = std::mem::take(&mut slot);
        assert_eq!(real.bufs.capacity(), BURST);
        assert_eq!(slot.bufs.capacity(), 0, "the placeholder owns no storage");
        let mut b = Burst::default();
        assert!(b.push(Buf::new()).is_ok());
        assert_eq!(b.bufs.capacity(), BURST);
        assert_eq!(b.free(), BURST - 1);
    }

    #[test]
    fn burst_retain_or_free_keeps_order() {
        let mut p = Pool::new(8);
        let mut burst = Burst::new();
        for i in 0..6u8 {
            let mut b = p.get().expect("buf");
            assert!(b.copy_from(&[i]));
            assert!(burst.push(b).is_ok());
        }
        burst.retain_or_free(&mut p, |b| b.frame()[0] % 2 == 0);
        let kept: Vec<u8> = burst.iter().map(|b| b.frame()[0]).collect();
        assert_eq!(kept, vec![0, 2, 4]);
        assert_eq!(p.available(), 5);
        assert!(burst.swap_remove(7).is_none());
        assert_eq!(burst.swap_remove(0).map(|b| b.frame()[0]), Some(0));
        assert_eq!(burst[0].frame(), &[4]);
    }
}
