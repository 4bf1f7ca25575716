//! The warden lab: a TOML topology turned into network namespaces, veth
//! pairs, Linux bridges, TAP devices, kernel VXLAN peers and warden
//! instances, with traffic checks and a teardown that always runs.
//!
//! Every resource is named after a per-run prefix and recorded in a state
//! file before it is created ([`state`]), so `warden-lab down` can remove a
//! lab whose creator died.

pub mod checks;
pub mod flood;
pub mod inject;
pub mod inject_attacks;
pub mod inject_identity;
pub mod lab;
pub mod netns;
pub mod process;
pub mod report;
pub mod state;
mod sys;
pub use sys::Signal;
pub mod tcp;
pub mod udp;
