//! warden's engine: buffers, ports, the VTEP pipeline, the underlay host
//! stack, counters and the control socket.

pub mod underlay;
