//! `warden trace`, on the control side: the request with names (ports,
//! peers, identities) is resolved to indices and handed to a worker, which
//! traces it against its live state (`engine::trace`); a live trace starts a
//! tap on every worker and streams what comes back.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use crate::engine::{
    Engine, FlowSpec, LiveFilter, LiveRecord, LiveTap, Note, TraceInput, TraceReport,
};
use crate::stats::Names;
use crate::worker::Msg;

/// What `warden trace` asks, with names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TraceRequest {
    /// Received on this access port (by config name)...
    pub port: Option<String>,
    /// ... or from this peer, in this VNI.
    pub peer: Option<Ipv4Addr>,
    pub vni: Option<u32>,
    /// The packet: a flow, or a frame (hex, e.g. from a pcap file).
    pub flow: Option<FlowSpec>,
    pub frame_hex: Option<String>,
    /// An identity header from the peer asserting this identity (by name).
    pub header: Option<String>,
    /// A VXLAN-GBP group from a plain VTEP.
    pub gbp: Option<u16>,
    /// An L7 request to decide: `http METHOD PATH [HOST]`, `tls NAME`, `dns NAME`.
    pub request: Option<String>,
}

/// A request resolved against the running config.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub input: TraceInput,
    pub flow: Option<FlowSpec>,
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex: {e}")))
        .collect()
}

/// Names to indices.
pub fn resolve(req: &TraceRequest, names: &Names) -> Result<Resolved, String> {
    let port = req
        .port
        .as_ref()
        .map(|n| {
            names
                .ports
                .iter()
                .position(|p| p == n)
                .map(|i| i as u16)
                .ok_or_else(|| format!("no port {n:?}; ports: {}", names.ports.join(", ")))
        })
        .transpose()?;
    let peer = req
        .peer
        .map(|a| {
            names
                .peers
                .iter()
                .position(|(p, _)| p == &a.to_string())
                .map(|i| i as u16)
                .ok_or_else(|| format!("no peer {a}"))
        })
        .transpose()?;
    if port.is_some() == peer.is_some() {
        return Err(
            "give where the packet arrives: --port NAME, or --peer ADDRESS with --vni".into(),
        );
    }
    let header_identity = req
        .header
        .as_ref()
        .map(|n| {
            names
                .identities
                .iter()
                .find(|(_, name)| name == n)
                .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("no identity document named {n:?}"))
        })
        .transpose()?;
    let frame = match (&req.flow, &req.frame_hex) {
        (Some(_), None) => Vec::new(),
        (None, Some(h)) => unhex(h)?,
        _ => {
            return Err(
                "give the packet: a flow (--src, --dst, --proto) or a frame (--pcap)".into(),
            )
        }
    };
    Ok(Resolved {
        input: TraceInput {
            frame,
            port,
            peer,
            vni: req.vni,
            header_identity,
            gbp: req.gbp,
            request: req.request.clone(),
        },
        flow: req.flow.clone(),
    })
}

/// On the worker: build the frame when a flow was given, then trace.
pub fn trace_on(
    engine: &mut Engine,
    r: &Resolved,
    rules: &[String],
) -> Result<TraceReport, String> {
    let mut input = r.input.clone();
    if let Some(flow) = &r.flow {
        let vni = match (input.port, input.vni) {
            (Some(p), _) => engine
                .tables()
                .port_vni
                .get(usize::from(p))
                .copied()
                .flatten(),
            (None, Some(v)) => overlay::Vni::new(v).and_then(|v| engine.tables().vni_index(v)),
            _ => None,
        }
        .ok_or("the packet's VNI is not configured (an access port, or --vni with --peer)")?;
        input.frame = engine.trace_frame(flow, vni)?;
    }
    let name = |r: policy::RuleId| {
        rules
            .get(r.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("rule {}", r.0))
    };
    Ok(engine.trace(&input, name))
}

/// Run an offline trace on worker 0.
pub fn run(
    req: &TraceRequest,
    names: &Names,
    workers: &[Sender<Msg>],
) -> Result<TraceReport, String> {
    let resolved = resolve(req, names)?;
    let w = workers.first().ok_or("no worker")?;
    let (done, answer) = crossbeam_channel::bounded(1);
    let timeout = Duration::from_secs(5);
    w.send_timeout(
        Msg::Trace(Box::new(resolved), names.rules.clone(), done),
        timeout,
    )
    .map_err(|_| "the worker does not take the trace".to_string())?;
    let mut report = answer
        .recv_timeout(timeout)
        .map_err(|_| "the worker did not answer".to_string())??;
    // The worker speaks in ids and indices; the operator reads names.
    for step in &mut report.steps {
        for (hex, name) in &names.identities {
            step.text = step.text.replace(hex.as_str(), name);
        }
        for (i, name) in names.ports.iter().enumerate().rev() {
            step.text = step
                .text
                .replace(&format!("port #{i}"), &format!("port {name}"));
        }
    }
    Ok(report)
}

/// What `warden trace --live` asks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LiveRequest {
    pub filter: LiveFilter,
    pub count: u32,
    pub seconds: u64,
}

/// One traced packet, as the CLI prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiveLine {
    /// `tcp 10.1.0.21:40000 -> 10.1.0.23:5001 from port w1`
    pub packet: String,
    /// One line per stage.
    pub stages: Vec<String>,
}

fn next_text(n: crate::engine::meta_next::Next, names: &Names) -> String {
    use crate::engine::meta_next::Next as N;
    let port = |p: u16| {
        names
            .ports
            .get(usize::from(p))
            .cloned()
            .unwrap_or_else(|| format!("#{p}"))
    };
    let peer = |r: u16| {
        names
            .peers
            .get(usize::from(r))
            .map_or_else(|| format!("#{r}"), |(a, _)| a.clone())
    };
    match n {
        N::Drop(r) => format!("drop {}", r.name()),
        N::Encap(r) => format!("encap to peer {}", peer(r)),
        N::Deliver(p) => format!("deliver on port {}", port(p)),
        N::Tx(p) => format!("send on port {}", port(p)),
        N::Done => "consumed".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn describe(rec: &LiveRecord, names: &Names) -> LiveLine {
    let f = &rec.key.flow;
    let from = match rec.from {
        crate::engine::From::Port(p) => format!(
            "port {}",
            names.ports.get(usize::from(p)).cloned().unwrap_or_default()
        ),
        crate::engine::From::Peer(r) => format!(
            "peer {}",
            names
                .peers
                .get(usize::from(r))
                .map(|(a, _)| a.clone())
                .unwrap_or_default()
        ),
        crate::engine::From::Router => "the gateway".into(),
    };
    let stages = rec
        .notes
        .iter()
        .flatten()
        .map(|n: &Note| {
            format!(
                "{:<11} -> {:<28} vni {:<8} verdict {:<10} source {}",
                n.stage,
                next_text(n.next, names),
                names.vnis.get(usize::from(n.vni)).copied().unwrap_or(0),
                n.verdict.name(),
                names.identity_name(&format!("{:08x}", n.src_identity.0)),
            )
        })
        .collect();
    LiveLine {
        packet: format!(
            "{} {}:{} -> {}:{} from {from}",
            crate::flowlog::protocol_name(f.protocol.0),
            f.src,
            f.src_port,
            f.dst,
            f.dst_port
        ),
        stages,
    }
}

/// Run a live trace: start a tap on every worker, pass each traced packet
/// to `each` as it comes, stop at the count or the deadline.
pub fn run_live(
    req: &LiveRequest,
    names: &Names,
    workers: &[Sender<Msg>],
    mut each: impl FnMut(&LiveLine) -> bool,
) -> Result<u32, String> {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let count = req.count.clamp(1, 10_000);
    for w in workers {
        let tap = LiveTap::new(req.filter.clone(), count, tx.clone());
        w.send_timeout(Msg::LiveTrace(Some(tap)), Duration::from_secs(5))
            .map_err(|_| "a worker does not take the trace".to_string())?;
    }
    let deadline = Instant::now() + Duration::from_secs(req.seconds.max(1));
    let mut seen = 0;
    while seen < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(rec) => {
                seen += 1;
                if !each(&describe(&rec, names)) {
                    break;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    for w in workers {
        let _ = w.send_timeout(Msg::LiveTrace(None), Duration::from_secs(5));
    }
    Ok(seen)
}
