//! Wire formats of the container overlay: zero-copy views and Reprs.

pub mod types;

pub use types::{Ipv4Cidr, MacAddr, ParseError, Vni};
