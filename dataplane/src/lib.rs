//! warden's engine: buffers, ports, the VTEP pipeline, the underlay host
//! stack, counters, the control socket and hot reload.

pub mod buffer;
pub mod capture;
pub mod control;
pub mod counters;
pub mod engine;
pub mod explain;
pub mod fdb;
pub mod flowlog;
pub mod flows;
pub mod fqdn;
pub mod l7flows;
pub mod learn;
pub mod metrics;
pub mod observe;
pub mod port;
pub mod reload;
pub mod stats;
pub mod underlay;
pub mod worker;
