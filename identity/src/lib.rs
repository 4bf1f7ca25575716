//! Workload identity: attested identity documents and their ids, the keys
//! wardens share, and the identity header that carries an authenticated
//! identity inside a workload's own packet.
//!
//! - [`doc`]: identity documents and their 32-bit ids.
//! - [`attest`]: SHA-256 of an executable, documents as TOML, warden ids.
//! - [`keys`]: secrets, epochs, HKDF-derived directional tag keys, and the
//!   [`KeySource`] trait the packet path looks keys up through.
//! - [`header`]: the 28-byte header (view and Repr), [`mint`] and [`verify`].
//! - [`stamp`]: insert, find and strip the header in an Ethernet frame,
//!   and build announce-only packets.
//!
//! # The no-panic contract
//!
//! As in the overlay crate, everything that reads packet bytes is written
//! for hostile input: no byte sequence of any length makes
//! `header::Packet::new_checked` (and the getters of a view it accepted),
//! `Repr::parse`, `Repr::parse_ipv6_ext`, [`stamp::find_ipv4`],
//! [`stamp::find_ipv6`], [`stamp::strip_ipv4`], [`stamp::strip_ipv6`],
//! the `insert_*` functions or `announce_*` panic or read out of bounds.
//! Views built with `new_unchecked` are for emitting into buffers the
//! caller sized.
//!
//! Pure: no I/O beyond reading a file to attest it or to load a secret, no
//! threads. `mint`, `verify`, `find_*`, `insert_*` and `strip_*` never
//! allocate.

pub mod attest;
pub mod doc;
pub mod header;
pub mod keys;
pub mod stamp;

pub use attest::{sha256_file, warden_id_of, WardenId};
pub use doc::{IdentityDoc, IdentityId};
pub use header::{mint, timestamp_fresh, verify, Framing, Repr, TagInput};
pub use keys::{
    derive_key, EpochClock, KeyError, KeySource, Secret, StaticKeys, TagKey, TagMac, TAG_LEN,
};
pub use stamp::StampError;
