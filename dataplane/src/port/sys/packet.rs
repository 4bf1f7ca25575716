//! An AF_PACKET socket with a TPACKET_V3 mmap RX ring and a TX ring.
//!
//! RX (TPACKET_V3, block based): the kernel fills blocks of many frames and
//! hands a block over when it is full or `retire_ms` passed; we walk its
//! frames and give the block back by writing TP_STATUS_KERNEL to its status.
//! TX (TPACKET_V3 TX ring, kernel >= 4.11): fixed-size frames; we copy a
//! frame in, mark it TP_STATUS_SEND_REQUEST, and one `sendto(NULL, 0,
//! MSG_DONTWAIT)` per burst makes the kernel send every marked frame.
//!
//! Ring headers are read at byte offsets taken from libc's struct layouts
//! (`offset_of!`), status words through `AtomicU32` (Acquire to take a slot
//! from the kernel, Release to hand it back).

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use libc::{tpacket3_hdr, tpacket_block_desc, tpacket_hdr_v1, tpacket_hdr_variant1};

use super::{if_info, setsockopt, socket, IfInfo, OsError};

/// `enum tpacket_versions`: TPACKET_V3.
const TPACKET_V3: libc::c_int = 2;
/// Block and frame status: owned by the kernel / available for TX.
const TP_STATUS_KERNEL: u32 = 0;

/// Offset of a block's status word.
const BLOCK_STATUS: usize =
    offset_of!(tpacket_block_desc, hdr) + offset_of!(tpacket_hdr_v1, block_status);
/// Offset of a block's frame count.
const BLOCK_NUM_PKTS: usize =
    offset_of!(tpacket_block_desc, hdr) + offset_of!(tpacket_hdr_v1, num_pkts);
/// Offset of a block's first-frame offset.
const BLOCK_FIRST: usize =
    offset_of!(tpacket_block_desc, hdr) + offset_of!(tpacket_hdr_v1, offset_to_first_pkt);

const H_NEXT: usize = offset_of!(tpacket3_hdr, tp_next_offset);
const H_SNAPLEN: usize = offset_of!(tpacket3_hdr, tp_snaplen);
const H_LEN: usize = offset_of!(tpacket3_hdr, tp_len);
const H_STATUS: usize = offset_of!(tpacket3_hdr, tp_status);
const H_MAC: usize = offset_of!(tpacket3_hdr, tp_mac);
const H_VLAN_TCI: usize =
    offset_of!(tpacket3_hdr, hv1) + offset_of!(tpacket_hdr_variant1, tp_vlan_tci);
const H_VLAN_TPID: usize =
    offset_of!(tpacket3_hdr, hv1) + offset_of!(tpacket_hdr_variant1, tp_vlan_tpid);
/// Where TX frame data starts: TPACKET3_HDRLEN - sizeof(sockaddr_ll), which
/// is what the kernel uses when PACKET_TX_HAS_OFF is not set.
const TX_DATA: usize = libc::TPACKET3_HDRLEN - size_of::<libc::sockaddr_ll>();

/// Ring sizes. Block sizes must be multiples of the page size and of the
/// frame size; frame sizes multiples of 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes per RX block.
    pub rx_block_size: u32,
    /// RX blocks.
    pub rx_block_nr: u32,
    /// Nominal RX frame size (TPACKET_V3 packs frames; this only sizes the
    /// frame count the kernel checks).
    pub rx_frame_size: u32,
    /// How long the kernel may keep a partly filled block (ms).
    pub retire_ms: u32,
    /// Bytes per TX frame, header included.
    pub tx_frame_size: u32,
    /// TX frames.
    pub tx_frame_nr: u32,
    /// Bypass the qdisc layer on TX (PACKET_QDISC_BYPASS): faster, but
    /// packet taps (tcpdump) on this interface no longer see our TX; the
    /// peer end of a veth still does.
    pub qdisc_bypass: bool,
}

impl Default for RingConfig {
    fn default() -> RingConfig {
        RingConfig {
            rx_block_size: 1 << 18,
            rx_block_nr: 16,
            rx_frame_size: 2048,
            retire_ms: 1,
            tx_frame_size: 4096,
            tx_frame_nr: 512,
            qdisc_bypass: true,
        }
    }
}

/// One received frame, borrowed from the ring until the next `rx_next`.
#[derive(Debug)]
pub struct RxFrame<'a> {
    /// The captured bytes (the whole frame unless it exceeded the block).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// TP_STATUS_* bits of the frame.
    pub status: u32,
    /// (TPID, TCI) of a VLAN tag the NIC or veth stripped, to be put back.
    pub vlan: Option<(u16, u16)>,
}

/// Result of queuing one TX frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPush {
    /// In the ring, marked for sending.
    Queued,
    /// The next slot is still owned by the kernel.
    RingFull,
    /// Longer than a TX slot.
    TooLong,
}

/// An AF_PACKET socket bound to one interface, with both rings mapped.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    rx_block_size: usize,
    rx_block_nr: usize,
    /// Block being read (or to be read next).
    rx_block: usize,
    /// True while we own `rx_block` and have frames left in it or it is
    /// fully read and not yet given back.
    rx_held: bool,
    /// Frames of the held block not read yet.
    rx_left: u32,
    /// Offset of the next frame inside the held block.
    rx_off: usize,
    tx_base: usize,
    tx_frame_size: usize,
    tx_frame_nr: usize,
    tx_head: usize,
}

// SAFETY: the mapping is owned by this value alone (no other handle to it
// exists in the process) and the kernel side synchronizes through the
// status words; nothing is tied to the creating thread.
unsafe impl Send for PacketSocket {}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096).max(1)
}

fn invalid(op: &'static str) -> OsError {
    OsError {
        op,
        source: io::Error::from(io::ErrorKind::InvalidInput),
    }
}

impl PacketSocket {
    /// Opens a socket on interface `name` (in the calling thread's network
    /// namespace), sets up and maps both rings, ignores its own outgoing
    /// frames, joins promiscuous mode and binds to the interface.
    pub fn open(name: &str, cfg: &RingConfig) -> Result<(PacketSocket, IfInfo), OsError> {
        let page = page_size();
        let rx_block_size = cfg.rx_block_size as usize;
        let rx_block_nr = cfg.rx_block_nr as usize;
        let rx_frame_size = cfg.rx_frame_size as usize;
        let tx_frame_size = cfg.tx_frame_size as usize;
        let tx_frame_nr = cfg.tx_frame_nr as usize;
        if rx_block_size == 0
            || !rx_block_size.is_multiple_of(page)
            || rx_block_nr == 0
            || rx_frame_size < libc::TPACKET3_HDRLEN
            || !rx_frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT)
            || !rx_block_size.is_multiple_of(rx_frame_size)
        {
            return Err(invalid("rx ring size"));
        }
        if tx_frame_size <= TX_DATA
            || !tx_frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT)
            || tx_frame_nr == 0
        {
            return Err(invalid("tx ring size"));
        }
        // TX frames are laid out in blocks: one page-multiple block that
        // holds a whole number of frames, so frame k sits at k * size.
        let tx_per_block = (page.max(tx_frame_size) / tx_frame_size).max(1);
        let tx_block_size = tx_per_block * tx_frame_size;
        if !tx_block_size.is_multiple_of(page) {
            return Err(invalid(
                "tx frame size must divide or be a multiple of the page size",
            ));
        }
        let tx_block_nr = tx_frame_nr.div_ceil(tx_per_block);
        let tx_frame_nr = tx_block_nr * tx_per_block;

        // Protocol 0: nothing is queued before the rings exist and the
        // socket is bound to its interface.
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        let raw = fd.as_raw_fd();
        let info = if_info(raw, name)?;

        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V3,
            "setsockopt(PACKET_VERSION)",
        )?;
        // A malformed TX frame is skipped instead of wedging the ring.
        let one: libc::c_int = 1;
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_LOSS,
            &one,
            "setsockopt(PACKET_LOSS)",
        )?;

        let rx_req = libc::tpacket_req3 {
            tp_block_size: cfg.rx_block_size,
            tp_block_nr: cfg.rx_block_nr,
            tp_frame_size: cfg.rx_frame_size,
            tp_frame_nr: u32::try_from(rx_block_nr * (rx_block_size / rx_frame_size))
                .map_err(|_| invalid("rx ring size"))?,
            tp_retire_blk_tov: cfg.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &rx_req,
            "setsockopt(PACKET_RX_RING)",
        )?;
        let tx_req = libc::tpacket_req3 {
            tp_block_size: u32::try_from(tx_block_size).map_err(|_| invalid("tx ring size"))?,
            tp_block_nr: u32::try_from(tx_block_nr).map_err(|_| invalid("tx ring size"))?,
            tp_frame_size: cfg.tx_frame_size,
            tp_frame_nr: u32::try_from(tx_frame_nr).map_err(|_| invalid("tx ring size"))?,
            tp_retire_blk_tov: 0,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_TX_RING,
            &tx_req,
            "setsockopt(PACKET_TX_RING)",
        )?;

        let rx_len = rx_block_size * rx_block_nr;
        let map_len = rx_len + tx_block_size * tx_block_nr;
        // SAFETY: a fresh shared mapping of the socket's rings (RX first,
        // then TX, as the kernel lays them out); no existing memory is
        // touched. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(OsError::last("mmap(packet rings)"));
        }
        let Some(map) = NonNull::new(p.cast::<u8>()) else {
            return Err(invalid("mmap(packet rings)"));
        };
        // From here on Drop unmaps.
        let sock = PacketSocket {
            fd,
            map,
            map_len,
            rx_block_size,
            rx_block_nr,
            rx_block: 0,
            rx_held: false,
            rx_left: 0,
            rx_off: 0,
            tx_base: rx_len,
            tx_frame_size,
            tx_frame_nr,
            tx_head: 0,
        };

        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "setsockopt(PACKET_IGNORE_OUTGOING)",
        )?;
        if cfg.qdisc_bypass {
            setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one,
                "setsockopt(PACKET_QDISC_BYPASS)",
            )?;
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: info.index,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "setsockopt(PACKET_ADD_MEMBERSHIP promisc)",
        )?;

        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = info.index;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed, alive for
        // the call.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(OsError::last("bind"));
        }
        Ok((sock, info))
    }

    /// Joins PACKET_FANOUT_HASH group `group` (after bind), so that sockets
    /// of several workers on one interface split flows by hash.
    pub fn join_fanout(&self, group: u16) -> Result<(), OsError> {
        let arg: libc::c_int = libc::c_int::from(group)
            | (((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) as libc::c_int) << 16);
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &arg,
            "setsockopt(PACKET_FANOUT)",
        )
    }

    /// The socket descriptor (readable when a block is ready).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Longest frame one TX slot carries.
    pub fn tx_max_frame(&self) -> usize {
        self.tx_frame_size - TX_DATA
    }

    /// The status word at byte `off` of the mapping.
    fn status_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.map_len);
        // SAFETY: callers pass offsets of status words inside the mapping
        // (block starts are page aligned, frame headers 16-byte aligned, so
        // the word is 4-byte aligned); the mapping lives as long as `self`,
        // and the kernel accesses these words atomically too.
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// A u32 at byte `off` of the mapping, in memory we currently own.
    fn read_u32(&self, off: usize) -> u32 {
        if off + 4 > self.map_len {
            return 0;
        }
        // SAFETY: in bounds (checked above) of the live mapping; unaligned
        // read of plain bytes the kernel finished writing before it handed
        // the block over (Acquire on the block status).
        unsafe { self.map.as_ptr().add(off).cast::<u32>().read_unaligned() }
    }

    /// A u16 at byte `off` of the mapping, in memory we currently own.
    fn read_u16(&self, off: usize) -> u16 {
        if off + 2 > self.map_len {
            return 0;
        }
        // SAFETY: as in `read_u32`.
        unsafe { self.map.as_ptr().add(off).cast::<u16>().read_unaligned() }
    }

    /// Gives the held block back to the kernel once all its frames are read.
    pub fn rx_release_done(&mut self) {
        if self.rx_held && self.rx_left == 0 {
            let base = self.rx_block * self.rx_block_size;
            self.status_at(base + BLOCK_STATUS)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            self.rx_held = false;
            self.rx_block = (self.rx_block + 1) % self.rx_block_nr;
        }
    }

    /// The next received frame, or `None` when no block is ready. The frame
    /// borrows the ring; its block goes back to the kernel on a later call.
    pub fn rx_next(&mut self) -> Option<RxFrame<'_>> {
        // At most one pass over the ring: a block with no (valid) frames is
        // released and the next one looked at.
        for _ in 0..=self.rx_block_nr {
            self.rx_release_done();
            let base = self.rx_block * self.rx_block_size;
            if !self.rx_held {
                let status = self.status_at(base + BLOCK_STATUS).load(Ordering::Acquire);
                if status & libc::TP_STATUS_USER == 0 {
                    return None;
                }
                self.rx_held = true;
                self.rx_left = self.read_u32(base + BLOCK_NUM_PKTS);
                self.rx_off = self.read_u32(base + BLOCK_FIRST) as usize;
            }
            if self.rx_left == 0 {
                continue;
            }
            let off = self.rx_off;
            let bs = self.rx_block_size;
            if off < BLOCK_FIRST || off.saturating_add(size_of::<tpacket3_hdr>()) > bs {
                self.rx_left = 0; // corrupt block: skip the rest of it
                continue;
            }
            let h = base + off;
            let next = self.read_u32(h + H_NEXT) as usize;
            let snaplen = self.read_u32(h + H_SNAPLEN) as usize;
            let wire_len = self.read_u32(h + H_LEN);
            let status = self.read_u32(h + H_STATUS);
            let mac = usize::from(self.read_u16(h + H_MAC));
            if off + mac + snaplen > bs {
                self.rx_left = 0;
                continue;
            }
            self.rx_left -= 1;
            self.rx_off = if next == 0 {
                bs
            } else {
                off.saturating_add(next)
            };
            let vlan = if status & libc::TP_STATUS_VLAN_VALID != 0 {
                let tci = self.read_u32(h + H_VLAN_TCI) as u16;
                let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    self.read_u16(h + H_VLAN_TPID)
                } else {
                    0x8100
                };
                Some((tpid, tci))
            } else {
                None
            };
            // SAFETY: `h + mac .. h + mac + snaplen` lies inside the held
            // block (checked above), which the kernel does not write while
            // its status says TP_STATUS_USER; the block is given back only
            // through `&mut self`, so not while this borrow lives.
            let data =
                unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(h + mac), snaplen) };
            return Some(RxFrame {
                data,
                wire_len,
                status,
                vlan,
            });
        }
        None
    }

    /// Copies `frame` into the next TX slot and marks it for sending; it
    /// leaves when [`PacketSocket::tx_kick`] runs.
    pub fn tx_push(&mut self, frame: &[u8]) -> TxPush {
        if frame.len() > self.tx_max_frame() {
            return TxPush::TooLong;
        }
        let slot = self.tx_base + self.tx_head * self.tx_frame_size;
        let status = self.status_at(slot + H_STATUS);
        if status.load(Ordering::Acquire) != TP_STATUS_KERNEL {
            return TxPush::RingFull;
        }
        let len = frame.len() as u32;
        // SAFETY: the slot `slot .. slot + tx_frame_size` lies inside the TX
        // part of the mapping (tx_head < tx_frame_nr), its status says it is
        // ours (TP_STATUS_AVAILABLE), and `frame` fits after the header
        // (checked above). The kernel reads it only after the Release store
        // below.
        unsafe {
            let p = self.map.as_ptr().add(slot);
            p.add(H_NEXT).cast::<u32>().write_unaligned(0);
            p.add(H_LEN).cast::<u32>().write_unaligned(len);
            p.add(H_SNAPLEN).cast::<u32>().write_unaligned(len);
            std::ptr::copy_nonoverlapping(frame.as_ptr(), p.add(TX_DATA), frame.len());
        }
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tx_head = (self.tx_head + 1) % self.tx_frame_nr;
        TxPush::Queued
    }

    /// Asks the kernel to send every marked TX frame, without waiting.
    pub fn tx_kick(&self) -> io::Result<()> {
        // SAFETY: sendto with a null buffer of length 0 and no address is
        // the documented TX-ring trigger; no memory is passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Frames seen and dropped by the kernel since the last call
    /// (PACKET_STATISTICS resets on read).
    pub fn take_stats(&self) -> io::Result<(u64, u64)> {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid and writable for the call; the
        // kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` describe the mapping created in `open`,
        // unmapped only here; no borrow of it outlives `self`. The fd closes
        // after this (OwnedFd).
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_kernel_abi() {
        assert_eq!(BLOCK_STATUS, 8);
        assert_eq!(BLOCK_NUM_PKTS, 12);
        assert_eq!(BLOCK_FIRST, 16);
        assert_eq!((H_SNAPLEN, H_LEN, H_STATUS, H_MAC), (12, 16, 20, 24));
        assert_eq!((H_VLAN_TCI, H_VLAN_TPID), (32, 36));
        assert_eq!(TX_DATA, 48);
    }

    #[test]
    fn bad_ring_sizes_are_refused_before_any_syscall() {
        let cfg = RingConfig {
            rx_block_size: 1000,
            ..RingConfig::default()
        };
        assert_eq!(
            PacketSocket::open("lo", &cfg).expect_err("bad").op,
            "rx ring size"
        );
        let cfg = RingConfig {
            tx_frame_size: 40,
            ..RingConfig::default()
        };
        assert_eq!(
            PacketSocket::open("lo", &cfg).expect_err("bad").op,
            "tx ring size"
        );
    }
}
