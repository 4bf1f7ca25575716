//! An AF_XDP socket on one interface queue, libc only (no libbpf).
//!
//! Setup: a UMEM (one anonymous mapping cut into fixed frames) registered
//! with XDP_UMEM_REG; the four rings (fill, completion, rx, tx) sized and
//! mmapped; the socket bound in copy mode (veth has no zero-copy) with
//! XDP_USE_NEED_WAKEUP when the kernel has it. RX needs an XDP program that
//! redirects the queue's frames to the socket: an XSKMAP and a five
//! instruction program are made with bpf(2) and attached with
//! BPF_LINK_CREATE, so the program leaves the interface when the link fd
//! closes (when this value drops, or the process dies).
//!
//! The UMEM frames are split once: the first `rx_frames` circulate between
//! the fill and rx rings (we copy a received frame out and give the frame
//! straight back; the fill ring has room for twice that, see
//! [`XdpConfig::rx_frames`]); the other `tx_frames` sit on a free list, go out through
//! the tx ring and come back through the completion ring.
//!
//! Ring indices are free-running u32s; producer and consumer words are read
//! and written through `AtomicU32` (Acquire to see the other side's
//! entries, Release to publish ours), as libbpf's xsk.h does.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{if_info, setsockopt, socket, IfInfo, OsError, TxPush};

/// bpf(2) commands (enum bpf_cmd).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
/// enum bpf_map_type: BPF_MAP_TYPE_XSKMAP.
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// enum bpf_prog_type: BPF_PROG_TYPE_XDP.
const BPF_PROG_TYPE_XDP: u32 = 6;
/// enum bpf_attach_type: BPF_XDP.
const BPF_XDP: u32 = 37;
/// if_link.h XDP_FLAGS_*.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// Kernel XDP action used as the fallback when the queue has no socket.
const XDP_PASS: i32 = 2;
/// Helper id of bpf_redirect_map.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// offsetof(struct xdp_md, rx_queue_index).
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// Pseudo source register of a ld_imm64 that carries a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// Socket option (kernel >= 6.17): frames one copy-mode sendto may send
/// (default 32). libc 0.2.191 does not have it yet.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// What we ask for: a whole burst per kick.
const TX_BUDGET: u32 = 64;

/// Where the redirect program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Generic XDP, after the kernel built an skb: works on any interface.
    Skb,
    /// The driver's XDP hook (veth has one): fewer steps per frame.
    Driver,
}

/// UMEM and ring sizes, queue and mode of an [`XdpSocket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface queue to bind (and to redirect in the program).
    pub queue: u32,
    /// Bytes per UMEM frame: a power of two from 2048 to the page size.
    /// In copy mode the kernel keeps 256 bytes of it as headroom, so the
    /// longest received frame is `frame_size - 256`.
    pub frame_size: u32,
    /// Frames for receiving (power of two); also the rx ring size. The fill
    /// ring gets twice as many slots, as libbpf's defaults do: the kernel
    /// takes fill entries in batches and publishes its consumer index when
    /// it flushes, so for a moment a frame can sit in the rx ring while its
    /// fill slot still looks taken; the spare half keeps room to hand every
    /// frame back at once. (Defensive: with equal sizes the tests and the
    /// bench did not lose frames either.)
    pub rx_frames: u32,
    /// Frames for sending; also the tx and completion ring sizes (power of
    /// two).
    pub tx_frames: u32,
    /// XDP hook; `None`: driver mode, falling back to SKB mode.
    pub mode: Option<XdpMode>,
}

impl Default for XdpConfig {
    fn default() -> XdpConfig {
        XdpConfig {
            queue: 0,
            frame_size: 2048,
            rx_frames: 1024,
            tx_frames: 1024,
            mode: None,
        }
    }
}

/// Kernel counters of an AF_XDP socket (XDP_STATISTICS; they only grow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames dropped on receive (no fill frame, too long for a frame).
    pub rx_dropped: u64,
    /// Frames dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Invalid descriptors in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors in the tx ring.
    pub tx_invalid_descs: u64,
}

/// A shared or private mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; the kernel side of the
// rings synchronizes through the producer/consumer words. Nothing is tied
// to the creating thread.
unsafe impl Send for Mapping {}

impl Mapping {
    /// mmap(NULL, len, RW, flags, fd, off), checked.
    fn new(
        len: usize,
        flags: libc::c_int,
        fd: RawFd,
        off: libc::off_t,
        op: &'static str,
    ) -> Result<Mapping, OsError> {
        // SAFETY: a fresh mapping at an address the kernel picks; no
        // existing memory is touched. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(OsError::last(op));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| invalid(op))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made in `Mapping::new`,
        // unmapped only here; no borrow of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

fn invalid(op: &'static str) -> OsError {
    OsError {
        op,
        source: io::Error::from(io::ErrorKind::InvalidInput),
    }
}

/// One of the four rings: a mapping with producer, consumer and flags words
/// and `size` entries of `entry` bytes.
#[derive(Debug)]
struct Ring {
    map: Mapping,
    producer: usize,
    consumer: usize,
    flags: usize,
    desc: usize,
    entry: usize,
    mask: u32,
    size: u32,
    /// Our producer index (producer rings) or last seen producer (consumer
    /// rings).
    cached_prod: u32,
    /// Our consumer index (consumer rings) or last seen consumer (producer
    /// rings).
    cached_cons: u32,
}

impl Ring {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: u64,
        op: &'static str,
    ) -> Result<Ring, OsError> {
        let desc = usize::try_from(off.desc).map_err(|_| invalid(op))?;
        let len = desc + size as usize * entry;
        let pgoff = libc::off_t::try_from(pgoff).map_err(|_| invalid(op))?;
        let map = Mapping::new(len, libc::MAP_SHARED | libc::MAP_POPULATE, fd, pgoff, op)?;
        let field = |v: u64| -> Result<usize, OsError> {
            let o = usize::try_from(v).map_err(|_| invalid(op))?;
            if o % 4 != 0 || o + 4 > len {
                return Err(invalid(op));
            }
            Ok(o)
        };
        let mut ring = Ring {
            producer: field(off.producer)?,
            consumer: field(off.consumer)?,
            flags: field(off.flags)?,
            desc,
            entry,
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            map,
        };
        ring.cached_prod = ring.word(ring.producer).load(Ordering::Acquire);
        ring.cached_cons = ring.word(ring.consumer).load(Ordering::Acquire);
        Ok(ring)
    }

    /// The u32 word at byte `off` of the ring mapping.
    fn word(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.map.len);
        // SAFETY: `off` is one of the producer/consumer/flags offsets the
        // kernel gave, checked in `map` to be 4-byte aligned and inside the
        // mapping (page aligned), which lives as long as `self`; the kernel
        // accesses these words atomically too.
        unsafe { &*self.map.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Pointer to the entry of free-running index `idx`.
    fn slot(&self, idx: u32) -> *mut u8 {
        let off = self.desc + (idx & self.mask) as usize * self.entry;
        debug_assert!(off + self.entry <= self.map.len);
        // SAFETY: `idx & mask < size` and the mapping holds `desc + size *
        // entry` bytes, so the offset is in bounds.
        unsafe { self.map.ptr.as_ptr().add(off) }
    }

    /// The ring's flags word (XDP_RING_NEED_WAKEUP).
    fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer side: free entries (at least `want` if possible).
    fn prod_free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.word(self.consumer).load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Producer side: publishes the entries written so far.
    fn prod_submit(&self) {
        self.word(self.producer)
            .store(self.cached_prod, Ordering::Release);
    }

    /// Consumer side: entries waiting.
    fn cons_avail(&mut self) -> u32 {
        let n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n > 0 {
            return n;
        }
        self.cached_prod = self.word(self.producer).load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Consumer side: hands the entries read so far back.
    fn cons_release(&self) {
        self.word(self.consumer)
            .store(self.cached_cons, Ordering::Release);
    }

    /// Writes a UMEM address entry (fill ring) at our producer index.
    fn push_addr(&mut self, addr: u64) {
        debug_assert_eq!(self.entry, size_of::<u64>());
        let p = self.slot(self.cached_prod);
        // SAFETY: `p` is an in-bounds entry of 8 bytes (`slot`) that the
        // kernel does not read until the Release store of the producer
        // (callers checked `prod_free`).
        unsafe { p.cast::<u64>().write_unaligned(addr) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
    }

    /// Reads a UMEM address entry (completion ring) at our consumer index.
    fn pop_addr(&mut self) -> u64 {
        debug_assert_eq!(self.entry, size_of::<u64>());
        let p = self.slot(self.cached_cons);
        // SAFETY: in-bounds 8-byte entry that the kernel published (the
        // Acquire load in `cons_avail` saw its producer index past it) and
        // does not rewrite before our consumer store.
        let v = unsafe { p.cast::<u64>().read_unaligned() };
        self.cached_cons = self.cached_cons.wrapping_add(1);
        v
    }

    /// Writes a descriptor (tx ring) at our producer index.
    fn push_desc(&mut self, d: libc::xdp_desc) {
        debug_assert_eq!(self.entry, size_of::<libc::xdp_desc>());
        let p = self.slot(self.cached_prod);
        // SAFETY: as in `push_addr`, with a 16-byte entry.
        unsafe { p.cast::<libc::xdp_desc>().write_unaligned(d) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
    }

    /// Reads a descriptor (rx ring) at our consumer index.
    fn pop_desc(&mut self) -> libc::xdp_desc {
        debug_assert_eq!(self.entry, size_of::<libc::xdp_desc>());
        let p = self.slot(self.cached_cons);
        // SAFETY: as in `pop_addr`, with a 16-byte entry.
        let d = unsafe { p.cast::<libc::xdp_desc>().read_unaligned() };
        self.cached_cons = self.cached_cons.wrapping_add(1);
        d
    }
}

/// bpf(cmd, attr, size) on a plain-data attribute struct.
fn bpf<T>(cmd: libc::c_long, attr: &mut T, op: &'static str) -> Result<libc::c_long, OsError> {
    // SAFETY: `attr` is a valid, writable repr(C) bpf_attr prefix of the
    // size passed, alive for the call; every pointer inside it (insns,
    // license, key, value) points to memory the caller keeps alive.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(OsError::last(op));
    }
    Ok(rc)
}

/// A descriptor returned by bpf(2), owned.
fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T, op: &'static str) -> Result<OwnedFd, OsError> {
    let rc = bpf(cmd, attr, op)?;
    let fd = RawFd::try_from(rc).map_err(|_| invalid(op))?;
    // SAFETY: bpf(2) just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapUpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The redirect program: `return bpf_redirect_map(&xsks,
/// ctx->rx_queue_index, XDP_PASS)`; frames of a queue without a socket go
/// on to the kernel stack.
fn redirect_program(map_fd: RawFd) -> [Insn; 6] {
    [
        // r2 = *(u32 *)(r1 + rx_queue_index)
        insn(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (ld_imm64, two slots)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // exit
        insn(0x95, 0, 0, 0, 0),
    ]
}

fn name16(s: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, s) in n.iter_mut().zip(s.bytes().take(15)) {
        *d = s;
    }
    n
}

/// An AF_XDP socket bound to one queue of one interface, with its UMEM,
/// rings and redirect program.
#[derive(Debug)]
pub struct XdpSocket {
    /// Closed first: detaches the program from the interface.
    link: OwnedFd,
    _prog: OwnedFd,
    _xskmap: OwnedFd,
    fd: OwnedFd,
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
    umem: Mapping,
    frame_size: usize,
    /// UMEM addresses of TX frames neither queued nor in flight.
    tx_free: Vec<u64>,
    /// Descriptors pushed to the tx ring since the last kick.
    tx_unkicked: u32,
    need_wakeup: bool,
    mode: XdpMode,
    /// Descriptors from the kernel that pointed outside the UMEM.
    bad_descs: u64,
}

impl XdpSocket {
    /// Opens the socket on `name` (in the calling thread's network
    /// namespace): UMEM, rings, bind (retrying EBUSY for up to 2 s, as a
    /// queue stays busy for a moment after its last socket closed), then the
    /// XSKMAP and the redirect program, attached through a BPF link.
    pub fn open(name: &str, cfg: &XdpConfig) -> Result<(XdpSocket, IfInfo), OsError> {
        let page = page_size();
        let fs = cfg.frame_size as usize;
        if !fs.is_power_of_two() || fs < 2048 || fs > page {
            return Err(invalid("umem frame size"));
        }
        if !cfg.rx_frames.is_power_of_two() || !cfg.tx_frames.is_power_of_two() {
            return Err(invalid("xdp ring size"));
        }
        let frames = cfg.rx_frames as usize + cfg.tx_frames as usize;
        let fill_size = cfg
            .rx_frames
            .checked_mul(2)
            .ok_or(invalid("xdp ring size"))?;
        let umem_len = frames * fs;

        let info = {
            let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
            if_info(s.as_raw_fd(), name)?
        };
        let fd = socket(libc::AF_XDP, libc::SOCK_RAW, 0)?;
        let raw = fd.as_raw_fd();

        let umem = Mapping::new(
            umem_len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
            "mmap(umem)",
        )?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(
            raw,
            libc::SOL_XDP,
            libc::XDP_UMEM_REG,
            &reg,
            "setsockopt(XDP_UMEM_REG)",
        )?;
        for (opt, n, op) in [
            (
                libc::XDP_UMEM_FILL_RING,
                fill_size,
                "setsockopt(XDP_UMEM_FILL_RING)",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.tx_frames,
                "setsockopt(XDP_UMEM_COMPLETION_RING)",
            ),
            (libc::XDP_RX_RING, cfg.rx_frames, "setsockopt(XDP_RX_RING)"),
            (libc::XDP_TX_RING, cfg.tx_frames, "setsockopt(XDP_TX_RING)"),
        ] {
            setsockopt(raw, libc::SOL_XDP, opt, &n, op)?;
        }

        // SAFETY: xdp_mmap_offsets is plain integers; all-zero is valid.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` and `len` are valid and writable for the call; the
        // kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(OsError::last("getsockopt(XDP_MMAP_OFFSETS)"));
        }
        if len as usize != size_of::<libc::xdp_mmap_offsets>() {
            // A pre-5.4 kernel without the flags word.
            return Err(invalid("getsockopt(XDP_MMAP_OFFSETS): old kernel"));
        }
        let d = size_of::<libc::xdp_desc>();
        let a = size_of::<u64>();
        let mut fill = Ring::map(
            raw,
            &off.fr,
            fill_size,
            a,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            "mmap(fill ring)",
        )?;
        let comp = Ring::map(
            raw,
            &off.cr,
            cfg.tx_frames,
            a,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            "mmap(completion ring)",
        )?;
        let rx = Ring::map(
            raw,
            &off.rx,
            cfg.rx_frames,
            d,
            libc::XDP_PGOFF_RX_RING as u64,
            "mmap(rx ring)",
        )?;
        let tx = Ring::map(
            raw,
            &off.tx,
            cfg.tx_frames,
            d,
            libc::XDP_PGOFF_TX_RING as u64,
            "mmap(tx ring)",
        )?;

        // Every RX frame starts in the fill ring.
        for i in 0..u64::from(cfg.rx_frames) {
            fill.push_addr(i * u64::from(cfg.frame_size));
        }
        fill.prod_submit();
        let tx_free = (u64::from(cfg.rx_frames)..frames as u64)
            .rev()
            .map(|i| i * u64::from(cfg.frame_size))
            .collect();

        let need_wakeup = bind(raw, info.index, cfg.queue)?;
        // One kick per burst where the kernel allows it; older kernels keep
        // 32 per call and `tx_kick` repeats.
        let _ = setsockopt(
            raw,
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            &TX_BUDGET,
            "setsockopt(XDP_MAX_TX_SKB_BUDGET)",
        );

        let mut m = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: cfg.queue + 1,
            map_name: name16("warden_xsks"),
            ..MapCreateAttr::default()
        };
        let xskmap = bpf_fd(BPF_MAP_CREATE, &mut m, "bpf(BPF_MAP_CREATE xskmap)")?;
        let key: u32 = cfg.queue;
        let value: u32 = u32::try_from(raw).map_err(|_| invalid("xsk fd"))?;
        let mut u = MapUpdateAttr {
            map_fd: u32::try_from(xskmap.as_raw_fd()).map_err(|_| invalid("map fd"))?,
            key: (&key as *const u32) as u64,
            value: (&value as *const u32) as u64,
            ..MapUpdateAttr::default()
        };
        bpf(
            BPF_MAP_UPDATE_ELEM,
            &mut u,
            "bpf(BPF_MAP_UPDATE_ELEM xskmap)",
        )?;

        let insns = redirect_program(xskmap.as_raw_fd());
        let license = b"GPL\0";
        let mut p = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16("warden_xsk"),
            expected_attach_type: BPF_XDP,
            ..ProgLoadAttr::default()
        };
        let prog = bpf_fd(BPF_PROG_LOAD, &mut p, "bpf(BPF_PROG_LOAD)")?;

        let ifindex = u32::try_from(info.index).map_err(|_| invalid("ifindex"))?;
        let attach = |flags: u32| {
            let mut l = LinkCreateAttr {
                prog_fd: u32::try_from(prog.as_raw_fd()).map_err(|_| invalid("prog fd"))?,
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags,
            };
            bpf_fd(BPF_LINK_CREATE, &mut l, "bpf(BPF_LINK_CREATE xdp)")
        };
        let (link, mode) = match cfg.mode {
            Some(XdpMode::Skb) => (attach(XDP_FLAGS_SKB_MODE)?, XdpMode::Skb),
            Some(XdpMode::Driver) => (attach(XDP_FLAGS_DRV_MODE)?, XdpMode::Driver),
            None => match attach(XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, XdpMode::Driver),
                Err(_) => (attach(XDP_FLAGS_SKB_MODE)?, XdpMode::Skb),
            },
        };

        Ok((
            XdpSocket {
                link,
                _prog: prog,
                _xskmap: xskmap,
                fd,
                fill,
                comp,
                rx,
                tx,
                umem,
                frame_size: fs,
                tx_free,
                tx_unkicked: 0,
                need_wakeup,
                mode,
                bad_descs: 0,
            },
            info,
        ))
    }

    /// The socket descriptor (polls readable when the rx ring has frames).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The hook the program is attached to.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// True when the kernel took XDP_USE_NEED_WAKEUP.
    pub fn uses_need_wakeup(&self) -> bool {
        self.need_wakeup
    }

    /// The BPF link descriptor (closing it detaches the program).
    pub fn link_fd(&self) -> RawFd {
        self.link.as_raw_fd()
    }

    /// Longest frame one TX frame carries.
    pub fn tx_max_frame(&self) -> usize {
        self.frame_size
    }

    /// Descriptors the kernel handed us that pointed outside the UMEM.
    pub fn bad_descs(&self) -> u64 {
        self.bad_descs
    }

    /// Calls `f` on up to `max` received frames (borrowed from the UMEM for
    /// the call only), gives their frames back to the fill ring and returns
    /// how many were seen.
    pub fn rx_burst(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let want = max.min(self.rx.cons_avail() as usize);
        // Always enough with a fill ring twice the frame count; checked
        // anyway, since a frame read must go back.
        let room = self.fill.prod_free(want as u32) as usize;
        let n = want.min(room);
        for _ in 0..n {
            let d = self.rx.pop_desc();
            let start = usize::try_from(d.addr).unwrap_or(usize::MAX);
            let end = start.saturating_add(d.len as usize);
            if end <= self.umem.len {
                // SAFETY: `start..end` lies inside the UMEM mapping (checked
                // above), which lives as long as `self`. The kernel wrote
                // the frame before publishing the descriptor (Acquire in
                // `cons_avail`) and does not touch it until we put the frame
                // back on the fill ring below, after `f` returned.
                let data = unsafe {
                    std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(start), end - start)
                };
                f(data);
            } else {
                self.bad_descs += 1;
            }
            // Aligned mode: the kernel takes the frame's start back.
            let base = d.addr & !(self.frame_size as u64 - 1);
            self.fill.push_addr(base);
        }
        if n > 0 {
            self.rx.cons_release();
            self.fill.prod_submit();
        }
        if self.need_wakeup && self.fill.needs_wakeup() {
            self.wake_rx();
        }
        n
    }

    /// Moves finished TX frames from the completion ring to the free list.
    pub fn tx_reclaim(&mut self) {
        let n = self.comp.cons_avail();
        for _ in 0..n {
            let a = self.comp.pop_addr() & !(self.frame_size as u64 - 1);
            // The kernel hands back what we queued; anything else would be
            // a kernel bug, and `tx_push` relies on the bound.
            if (a as usize).saturating_add(self.frame_size) <= self.umem.len {
                self.tx_free.push(a);
            } else {
                self.bad_descs += 1;
            }
        }
        if n > 0 {
            self.comp.cons_release();
        }
    }

    /// Copies `frame` into a free UMEM frame and queues it on the tx ring
    /// (published by [`XdpSocket::tx_kick`]).
    pub fn tx_push(&mut self, frame: &[u8]) -> TxPush {
        if frame.len() > self.frame_size {
            return TxPush::TooLong;
        }
        if self.tx_free.is_empty() {
            self.tx_reclaim();
        }
        if self.tx.prod_free(1) == 0 {
            return TxPush::RingFull;
        }
        let Some(addr) = self.tx_free.pop() else {
            return TxPush::RingFull;
        };
        let start = addr as usize;
        debug_assert!(start + self.frame_size <= self.umem.len);
        // SAFETY: `addr` is the start of one of our TX frames (handed out in
        // `open`, or returned by the completion ring, masked to its frame
        // and bounds-checked in `tx_reclaim`), so `start .. start +
        // frame_size` is inside the UMEM; the
        // frame is on no ring, so the kernel does not read it until the
        // descriptor is published; `frame` fits (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                frame.as_ptr(),
                self.umem.ptr.as_ptr().add(start),
                frame.len(),
            );
        }
        self.tx.push_desc(libc::xdp_desc {
            addr,
            len: frame.len() as u32,
            options: 0,
        });
        self.tx_unkicked += 1;
        TxPush::Queued
    }

    /// Publishes the queued descriptors and, when the kernel wants it (or
    /// does not say), asks it to send them. Copy mode sends a limited batch
    /// per call (32 by default, 64 where XDP_MAX_TX_SKB_BUDGET took) and
    /// answers EAGAIN while more wait, so this kicks until the batch is
    /// taken or the kernel pushes back. Err means
    /// frames may still wait: kick again later.
    pub fn tx_kick(&mut self) -> io::Result<()> {
        self.tx.prod_submit();
        let pending = std::mem::take(&mut self.tx_unkicked);
        if self.need_wakeup && !self.tx.needs_wakeup() {
            return Ok(());
        }
        let mut tries = pending / 32 + 2;
        loop {
            // SAFETY: sendto with a null buffer of length 0 and no address
            // is the AF_XDP TX trigger; no memory is passed.
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
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            tries -= 1;
            if e.raw_os_error() != Some(libc::EAGAIN) || tries == 0 {
                return Err(e);
            }
        }
    }

    /// Frames queued on the tx ring that the kernel has not taken yet.
    pub fn tx_queued(&mut self) -> u32 {
        self.tx.prod_free(self.tx.size);
        self.tx.cached_prod.wrapping_sub(self.tx.cached_cons)
    }

    fn wake_rx(&self) {
        // SAFETY: recvfrom with a null buffer of length 0 and no address is
        // the AF_XDP RX wakeup; no memory is passed.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// The kernel's counters (XDP_STATISTICS).
    pub fn stats(&self) -> io::Result<XdpStats> {
        // SAFETY: xdp_statistics is plain integers; all-zero is valid.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid and writable for the call; the
        // kernel writes at most `len` bytes (fewer on older kernels, which
        // leaves the newer fields zero).
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(XdpStats {
            rx_dropped: st.rx_dropped,
            rx_ring_full: st.rx_ring_full,
            rx_invalid_descs: st.rx_invalid_descs,
            tx_invalid_descs: st.tx_invalid_descs,
        })
    }
}

/// Binds `fd` to (`ifindex`, `queue`) in copy mode, with need-wakeup when
/// the kernel takes it; returns whether it did.
fn bind(fd: RawFd, ifindex: i32, queue: u32) -> Result<bool, OsError> {
    let ifindex = u32::try_from(ifindex).map_err(|_| invalid("ifindex"))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut flags = libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP;
    loop {
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp of the size passed, alive
        // for the call.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sa as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(flags & libc::XDP_USE_NEED_WAKEUP != 0);
        }
        let e = OsError::last("bind(AF_XDP)");
        match e.source.raw_os_error() {
            Some(libc::EINVAL) if flags & libc::XDP_USE_NEED_WAKEUP != 0 => {
                flags &= !libc::XDP_USE_NEED_WAKEUP;
            }
            Some(libc::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return Err(e),
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = redirect_program(7);
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(p[0], insn(0x61, 2, 1, 16, 0));
        assert_eq!(p[0].regs, 0x12);
        assert_eq!(p[1].regs, 0x11);
        assert_eq!(p[1].imm, 7);
        assert_eq!(p[5].code, 0x95);
    }

    #[test]
    fn attr_sizes_match_the_kernel_abi() {
        assert_eq!(size_of::<MapCreateAttr>(), 44);
        assert_eq!(size_of::<MapUpdateAttr>(), 32);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(size_of::<LinkCreateAttr>(), 16);
        assert_eq!(size_of::<libc::xdp_desc>(), 16);
    }

    #[test]
    fn bad_sizes_are_refused_before_any_syscall() {
        let cfg = XdpConfig {
            frame_size: 3000,
            ..XdpConfig::default()
        };
        assert_eq!(
            XdpSocket::open("lo", &cfg).expect_err("bad").op,
            "umem frame size"
        );
        let cfg = XdpConfig {
            rx_frames: 1000,
            ..XdpConfig::default()
        };
        assert_eq!(
            XdpSocket::open("lo", &cfg).expect_err("bad").op,
            "xdp ring size"
        );
    }
}
