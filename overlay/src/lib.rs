//! Wire formats of the container overlay: zero-copy views and Reprs.
//!
//! # The no-panic contract
//!
//! Everything that reads bytes from the wire in this crate is written for
//! hostile input. No byte sequence, of any length, makes these panic, read
//! out of bounds or loop without end:
//!
//! - every `Packet::new_checked`, `Frame::new_checked` and
//!   `VlanTag::new_checked`, and every getter on a view that `new_checked`
//!   accepted (the check proves that each fixed field, and each variable
//!   part that a length field announces, lies inside the buffer);
//! - every `Repr::parse`;
//! - [`vlan::locate_l3`], [`ipv6::find_upper_layer`], the TCP option
//!   iterator, [`tunnel::decap`] and [`flow::FlowKey::from_inner_ethernet`].
//!
//! A view built with `new_unchecked` makes no such promise: it exists for
//! emitting into a buffer that the caller has sized (with `buffer_len`), and
//! its accessors index the buffer directly, as smoltcp's do. `Repr::emit`
//! checks the buffer length and returns [`Error::Truncated`] rather than
//! panicking when the buffer is too short.
//!
//! `Repr::parse` validates structure (lengths, versions, flag bits) but not
//! checksums: verify those on the view (`verify_checksum`) where the input
//! is untrusted, so the fast path can skip checksums that a NIC or an outer
//! layer already covered. [`tunnel::decap`] does verify the outer ones.
//!
//! The crate is pure (no I/O, no threads, no allocation) and holds no
//! `unsafe` code.

#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod flow;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod tunnel;
pub mod types;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use checksum::PseudoHeader;
pub use ethernet::EtherType;
pub use flow::{flow_hash, vxlan_src_port, FlowError, FlowKey};
pub use ip::IpProtocol;
pub use tunnel::{
    decap, DecapError, DecapShape, Decapped, EncapError, OuterParams, OuterTemplate, OUTER_LEN,
};
pub use types::{Ipv4Cidr, MacAddr, ParseError, Vni};
pub use vxlan::Gbp;

use core::fmt;

/// Why a view or a Repr refused a buffer. Small and `Copy` so that the
/// packet path can return it without cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    Truncated,
    /// A field holds a value the format forbids (bad version, length
    /// smaller than the header, reserved bits set...).
    Malformed,
    /// Well-formed, but a kind this crate does not model (ARP over other
    /// hardware, an unknown ICMP type, an IPv4 fragment in a Repr...).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for Error {}

/// The result type of the wire views and Reprs.
pub type Result<T> = core::result::Result<T, Error>;

/// Read a big-endian u16 at `at`; the caller has checked the length.
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Read a big-endian u32 at `at`; the caller has checked the length.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Write a big-endian u16 at `at`; the caller has checked the length.
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian u32 at `at`; the caller has checked the length.
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
