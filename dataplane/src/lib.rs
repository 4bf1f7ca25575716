//! warden's engine: buffers, ports, the VTEP pipeline, the underlay host
//! stack, counters, the control socket and hot reload.

/// The version the tools print: the crate version and the git commit it
/// was built from ("unknown" outside a git work tree).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("WARDEN_GIT_COMMIT"),
    ")"
);

pub mod buffer;
pub mod capture;
pub mod cli;
pub mod control;
pub mod counters;
pub mod engine;
pub mod explain;
pub mod fdb;
pub mod flowlog;
pub mod flows;
pub mod fqdn;
pub mod iface_lock;
pub mod l7flows;
pub mod learn;
pub mod metrics;
pub mod observe;
pub mod port;
pub mod reload;
pub mod stats;
pub mod tables_dump;
pub mod underlay;
pub mod worker;
