//! Workload identity: attested identity documents and their ids, the keys
//! wardens share, and the identity header that carries an authenticated
//! identity inside a workload's own packet.
//!
//! Pure: no I/O beyond reading a file to attest it, no threads.

pub mod doc;

pub use doc::{IdentityDoc, IdentityId};
