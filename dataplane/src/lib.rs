//! warden's engine: buffers, ports, the VTEP pipeline, the underlay host
//! stack, counters and the control socket.

pub mod buffer;
pub mod control;
pub mod counters;
pub mod engine;
pub mod fdb;
pub mod flows;
pub mod fqdn;
pub mod l7flows;
pub mod learn;
pub mod port;
pub mod stats;
pub mod underlay;
pub mod worker;
