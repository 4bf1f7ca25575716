//! `warden trace`: what the running engine would do with a packet, stage by
//! stage, without doing it (OVS's `ofproto/trace`, VPP's `trace`).
//!
//! The frame is parsed by the real parser and decided by the real decision
//! functions of the stages, against the worker's live tables and state:
//! port security and ARP checks, the source identity (a header is taken as
//! verified when the query says one is present: what a warden peer may
//! assert is still checked), the flow table (a known flow keeps its cached
//! verdict; a reply must come from where its flow went), the policy (set,
//! rule, mode, provisional), L7 (which parsers would run, and a request's
//! verdict when one is given), forwarding (FDB, or the gateway's route and
//! neighbor), stamp or strip, and where it would go. Only reads: no entry
//! is made, nothing learned, no counter moved.

use std::net::IpAddr;

use identity::IdentityId;
use serde::{Deserialize, Serialize};

use super::meta::{From, Kind};
use super::tables::PeerIdent;
use super::{Ctx, Engine};
use crate::fdb::Location;
use crate::flows::{Origin, Verdict};

/// A packet to trace, as the worker sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceInput {
    /// The inner frame (Ethernet).
    pub frame: Vec<u8>,
    /// Received on this access port, or from this peer (index).
    pub port: Option<u16>,
    pub peer: Option<u16>,
    /// The VNI it arrives in (from a peer; an access port has its own).
    pub vni: Option<u32>,
    /// From a warden peer: the identity its (verified) header asserts.
    pub header_identity: Option<u32>,
    /// From a plain VTEP: the VXLAN-GBP group.
    pub gbp: Option<u16>,
    /// An L7 request to decide on the flow: `http METHOD PATH HOST`,
    /// `tls NAME` or `dns NAME`.
    pub request: Option<String>,
}

/// One stage's line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Step {
    pub stage: String,
    pub text: String,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceReport {
    pub steps: Vec<Step>,
    /// `forward`, or `drop REASON`.
    pub result: String,
    /// The policy's verdict and rule, when it decided.
    pub verdict: Option<String>,
    pub rule: Option<String>,
}

struct Out {
    steps: Vec<Step>,
}

impl Out {
    fn say(&mut self, stage: &str, text: String) {
        self.steps.push(Step {
            stage: stage.into(),
            text,
        });
    }
}

fn dropped(mut out: Out, stage: &str, r: crate::counters::DropReason) -> TraceReport {
    out.say(stage, format!("dropped: {} ({})", r.name(), r.describe()));
    TraceReport {
        steps: out.steps,
        result: format!("drop {}", r.name()),
        verdict: None,
        rule: None,
    }
}

impl Engine {
    /// Trace `q` through this worker's tables and state; `rule_name` names
    /// a rule id.
    pub fn trace(
        &mut self,
        q: &TraceInput,
        rule_name: impl Fn(policy::RuleId) -> String,
    ) -> TraceReport {
        use crate::counters::DropReason as D;
        let mut out = Out { steps: Vec::new() };
        let Engine {
            tables,
            st,
            pool,
            counters,
            worker,
            ..
        } = self;
        let cx = Ctx {
            t: tables,
            st,
            pool,
            c: &counters.workers[*worker],
        };
        // Ingress.
        let (from, vni) = match (q.port, q.peer) {
            (Some(p), None) => {
                let Some(Some(v)) = cx.t.port_vni.get(usize::from(p)) else {
                    out.say("ingress", format!("port #{p} is not an access port"));
                    return dropped(out, "ingress", D::UnderlayNotForUs);
                };
                out.say(
                    "ingress",
                    format!(
                        "access port #{p}, VNI {}",
                        cx.t.vnis[usize::from(*v)].id.get()
                    ),
                );
                (From::Port(p), *v)
            }
            (None, Some(r)) => {
                let Some(peer) = cx.t.peers.get(usize::from(r)) else {
                    out.say("ingress", format!("no peer #{r}"));
                    return dropped(out, "ingress", D::NotAPeer);
                };
                let Some(v) = q
                    .vni
                    .and_then(overlay::Vni::new)
                    .and_then(|v| cx.t.vni_index(v))
                else {
                    return dropped(out, "decap", D::UnknownVni);
                };
                if !peer.carries(usize::from(v)) {
                    out.say(
                        "decap",
                        format!(
                            "peer {} does not carry VNI {}",
                            peer.address,
                            q.vni.unwrap_or(0)
                        ),
                    );
                    return dropped(out, "decap", D::PeerVniNotAllowed);
                }
                let kind = if peer.is_warden() {
                    "warden"
                } else {
                    "plain VTEP"
                };
                out.say(
                    "decap",
                    format!(
                        "VXLAN from peer {} ({kind}), VNI {}",
                        peer.address,
                        q.vni.unwrap_or(0)
                    ),
                );
                (From::Peer(r), v)
            }
            _ => {
                out.say("ingress", "give a port or a peer".into());
                return dropped(out, "ingress", D::UnderlayNotForUs);
            }
        };
        // Parse.
        let pkt = match super::parse::parse(&q.frame, vni) {
            Ok(p) => p,
            Err(r) => return dropped(out, "classify", r),
        };
        let (ip_src, ip_dst) = pkt.addrs(&q.frame);
        // Every outcome but a drop forwards this packet, with what decided it.
        let go = |out: Out, verdict: Option<String>, rule: Option<String>| {
            forward(out, &cx, vni, &pkt, ip_dst, from, verdict, rule)
        };
        let what = match pkt.kind {
            Kind::Ip => format!(
                "{} {}:{} -> {}:{}",
                crate::flowlog::protocol_name(pkt.key.flow.protocol.0),
                pkt.key.flow.src,
                pkt.key.flow.src_port,
                pkt.key.flow.dst,
                pkt.key.flow.dst_port
            ),
            Kind::Arp => "ARP".into(),
            Kind::IcmpError => "ICMP error".into(),
            Kind::Unknown => "unparsed".into(),
        };
        out.say(
            "classify",
            format!("parsed: {what}, {} -> {}", pkt.src_mac, pkt.dst_mac),
        );
        if !pkt.src_mac.is_unicast() {
            return dropped(out, "classify", D::BadSourceMac);
        }
        let origin = match from {
            From::Peer(r) => Origin::Peer(r),
            From::Port(p) => Origin::Port {
                port: p,
                mac: pkt.src_mac,
            },
            From::Router => return dropped(out, "classify", D::UnderlayNotForUs),
        };
        if let Some(id) = &cx.t.identity {
            if let Err(r) = super::classify::source_check(cx.t, id, from, vni, &pkt, ip_src) {
                return dropped(out, "port security", r);
            }
            out.say("port security", "source MAC and IP are allowed here".into());
        }
        if pkt.kind != Kind::Ip {
            out.say("classify", "not a flow of its own: switched".into());
            return go(out, None, None);
        }
        // Identity.
        let header = q.header_identity.map(IdentityId);
        if let (From::Peer(r), Some(h)) = (from, header) {
            if let PeerIdent::Warden { may_assert, .. } = &cx.t.peers[usize::from(r)].ident {
                if may_assert.binary_search(&h).is_err() {
                    return dropped(out, "identity", D::IdentityNotAuthorized);
                }
            } else {
                return dropped(out, "identity", D::IdentityNotAuthorized);
            }
        }
        let (src, source) =
            match super::classify::source_identity(&cx, from, vni, q.gbp, &pkt, header) {
                Ok(s) => s,
                Err(r) => return dropped(out, "identity", r),
            };
        out.say(
            "identity",
            format!("source {:08x} by {}", src.0, source.name()),
        );
        // Flow state.
        let key = pkt.key;
        if let Some(r) = cx.st.flows.lookup(&key) {
            let Some(e) = cx.st.flows.get(r).copied() else {
                return dropped(out, "flow", D::FlowOriginMismatch);
            };
            if e.origin != origin {
                out.say(
                    "flow",
                    format!("a flow with this key came from {:?}", e.origin),
                );
                return dropped(out, "flow", D::FlowOriginMismatch);
            }
            let rule = e.rule.map(&rule_name);
            out.say(
                "flow",
                format!(
                    "known flow ({:?}), verdict {} by {} (cached: the policy is not asked again)",
                    e.state,
                    e.verdict.name(),
                    rule.clone().unwrap_or_else(|| "-".into())
                ),
            );
            if e.verdict == Verdict::Revoked {
                return dropped(out, "flow", D::PolicyRevoked);
            }
            return go(out, Some(e.verdict.name().to_string()), rule);
        }
        let mut back = key.reversed();
        if let Some(v) = super::classify::routed_vni(cx.t, vni, pkt.dst_mac, key.flow.dst) {
            back.vni = v;
        }
        if let Some(r) = cx.st.flows.lookup(&back) {
            if let Some(f) = cx.st.flows.get(r) {
                if !f.egress.admits(origin) {
                    return dropped(out, "flow", D::ReplyWrongOrigin);
                }
                out.say(
                    "flow",
                    format!("the reply of a known flow (verdict {})", f.verdict.name()),
                );
                return go(out, Some("reply".into()), None);
            }
        }
        out.say("flow", "new flow".into());
        // Policy.
        if cx.t.identity.is_none() {
            out.say("policy", "identity is off: no policy".into());
            return go(out, Some("no_policy".into()), None);
        }
        if let (IpAddr::V4(a), true) = (key.flow.dst, cx.t.gateway_mac(vni) == Some(pkt.dst_mac)) {
            if cx.t.is_gateway_address(a) {
                out.say("policy", "to the gateway itself: answered by warden".into());
                return go(out, Some("gateway".into()), None);
            }
        }
        let id = cx.t.identity.as_ref().expect("identity checked above");
        let dst = super::classify::destination(cx.t, id, &key, pkt.dst_mac);
        let d = super::classify::redecide(&cx, &key, src, dst);
        let mode = id
            .policy
            .compiled
            .mode_of(d.rule.unwrap_or(policy::RuleId(u32::MAX)));
        let rule = Some(d.rule.map_or_else(|| "default".to_string(), &rule_name));
        out.say(
            "policy",
            format!(
                "destination {}; {} by {} (mode {}){}",
                dst.map_or("not known here".to_string(), |d| format!("{:08x}", d.0)),
                d.verdict.name(),
                rule.clone().unwrap_or_default(),
                format!("{mode:?}").to_lowercase(),
                if d.recheck {
                    ", provisional: decided again at the first reply"
                } else {
                    ""
                }
            ),
        );
        let verdict = Some(d.verdict.name().to_string());
        match d.verdict {
            Verdict::Deny => {
                let mut r = dropped(out, "policy", D::PolicyDenied);
                (r.verdict, r.rule) = (verdict, rule);
                return r;
            }
            Verdict::Reject => {
                let mut r = dropped(out, "policy", D::PolicyRejected);
                r.steps.push(Step {
                    stage: "policy".into(),
                    text: "answered with a TCP RST or ICMP port unreachable".into(),
                });
                (r.verdict, r.rule) = (verdict, rule);
                return r;
            }
            _ => {}
        }
        if let (Some(ins), Some(first)) = (d.inspect, d.rule) {
            out.say(
                "l7",
                format!(
                    "inspected: every request decided from {} ({ins:?})",
                    rule.clone().unwrap_or_default()
                ),
            );
            if let Some(req) = &q.request {
                let q2 = super::classify::flow_query_for(cx.st, cx.t, &key, src, dst);
                let text = l7_verdict(&id.policy.compiled, q2.as_ref(), first, req, &rule_name);
                out.say("l7", text);
            }
        }
        go(out, verdict, rule)
    }
}

/// A request's verdict, `http METHOD PATH HOST`, `tls NAME` or `dns NAME`.
fn l7_verdict(
    p: &policy::CompiledPolicy,
    q: Option<&policy::FlowQuery>,
    first: policy::RuleId,
    req: &str,
    rule_name: &impl Fn(policy::RuleId) -> String,
) -> String {
    let Some(q) = q else {
        return "no flow query".into();
    };
    let words: Vec<&str> = req.split_whitespace().collect();
    let Some(no_alpn) = l7::tls::Alpn::from_wire(&[]) else {
        return "no ALPN list".into();
    };
    let request = match words.as_slice() {
        ["http", method, path, host] => policy::L7Request::Http {
            method: method.as_bytes(),
            path: path.as_bytes(),
            host: Some((host.as_bytes(), None)),
        },
        ["http", method, path] => policy::L7Request::Http {
            method: method.as_bytes(),
            path: path.as_bytes(),
            host: None,
        },
        ["tls", name] => policy::L7Request::Tls {
            sni: Some(name.as_bytes()),
            alpn: no_alpn,
            ech: false,
        },
        ["dns", name] => policy::L7Request::Dns {
            name: name.as_bytes(),
        },
        _ => {
            return format!(
                "request {req:?}: expected `http METHOD PATH [HOST]`, `tls NAME` or `dns NAME`"
            )
        }
    };
    let d = p.request(q, first, &request);
    format!(
        "request {req:?}: {} by {}",
        if d.forwards() {
            "allowed"
        } else {
            "denied (the connection would be reset)"
        },
        d.rule.map_or("default".to_string(), rule_name)
    )
}

/// Forwarding, stamp or strip, and output. `ip_dst`: the packet's own
/// destination address (`Pkt::addrs`).
#[allow(clippy::too_many_arguments)]
fn forward(
    mut out: Out,
    cx: &Ctx,
    vni: u16,
    pkt: &super::meta::Pkt,
    ip_dst: IpAddr,
    from: From,
    verdict: Option<String>,
    rule: Option<String>,
) -> TraceReport {
    use crate::counters::DropReason as D;
    let (mut vni, mut dst_mac) = (vni, pkt.dst_mac);
    if cx.t.gateway_mac(vni) == Some(pkt.dst_mac) {
        let IpAddr::V4(dst) = ip_dst else {
            return dropped(out, "route", D::NoRoute);
        };
        if cx.t.is_gateway_address(dst) {
            out.say(
                "route",
                "to the gateway's own address: answered by warden".into(),
            );
            return done(out, "forward", verdict, rule);
        }
        let Some((egress, hop)) = cx.t.lookup_route(dst) else {
            return dropped(out, "route", D::NoRoute);
        };
        out.say(
            "route",
            format!(
                "route to VNI {} via {hop}",
                cx.t.vnis[usize::from(egress)].id.get()
            ),
        );
        match cx.st.router.neighbor_of(egress, hop) {
            Some(mac) => {
                out.say("route", format!("neighbor {hop} is {mac}"));
                (vni, dst_mac) = (egress, mac);
            }
            None => {
                out.say(
                    "route",
                    format!("neighbor {hop} unknown: warden would ARP for it and park the packet"),
                );
                return done(out, "forward", verdict, rule);
            }
        }
    }
    let stamp = cx.t.identity.is_some() && matches!(from, From::Port(_));
    let strip = matches!(from, From::Peer(_)) && cx.t.identity.is_some();
    let to_peer = |out: &mut Out, r: u16| {
        let peer = &cx.t.peers[usize::from(r)];
        if strip {
            out.say("identity", "the identity header is stripped".into());
        }
        if stamp && peer.is_warden() {
            out.say(
                "stamp",
                "stamped with the source's identity header toward the warden".into(),
            );
        }
        out.say(
            "output",
            format!(
                "encapsulated to peer {} (VNI {})",
                peer.address,
                cx.t.vnis[usize::from(vni)].id.get()
            ),
        );
    };
    match cx.st.fdb.lookup(vni, dst_mac, cx.st.now_s) {
        Some(Location::Port(p)) => {
            out.say("switch", format!("FDB: {dst_mac} is behind port #{p}"));
            if strip {
                out.say("identity", "the identity header is stripped".into());
            }
            out.say("output", format!("delivered on port #{p}"));
        }
        Some(Location::Peer(r)) => {
            out.say(
                "switch",
                format!(
                    "FDB: {dst_mac} is behind peer {}",
                    cx.t.peers[usize::from(r)].address
                ),
            );
            to_peer(&mut out, r);
        }
        None => {
            let v = &cx.t.vnis[usize::from(vni)];
            out.say(
                "switch",
                format!(
                    "FDB: {dst_mac} unknown: flooded to {} ports and {} peers of the VNI",
                    v.access_ports.len(),
                    v.flood_peers.len()
                ),
            );
        }
    }
    done(out, "forward", verdict, rule)
}

fn done(out: Out, result: &str, verdict: Option<String>, rule: Option<String>) -> TraceReport {
    TraceReport {
        steps: out.steps,
        result: result.into(),
        verdict,
        rule,
    }
}

/// A flow described on the command line: the frame is built here, with the
/// MACs this warden would see when they are not given (a bound workload's,
/// the gateway's for a destination outside the VNI's subnet, a known
/// neighbor's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSpec {
    pub src: std::net::Ipv4Addr,
    pub dst: std::net::Ipv4Addr,
    /// tcp, udp or icmp.
    pub proto: String,
    pub sport: u16,
    pub dport: u16,
    /// As `02:00:00:00:01:21`.
    pub src_mac: Option<String>,
    pub dst_mac: Option<String>,
}

impl Engine {
    /// The frame of `f` arriving in VNI index `vni`.
    pub fn trace_frame(&self, f: &FlowSpec, vni: u16) -> Result<Vec<u8>, String> {
        use overlay::{ipv4, IpProtocol, MacAddr};
        let t = &self.tables;
        let bound = |ip: std::net::Ipv4Addr| {
            t.identity
                .as_ref()
                .and_then(|id| id.binding_at_ip(vni, IpAddr::V4(ip)))
                .map(|b| b.mac)
        };
        let mac = |m: &Option<String>| -> Result<Option<MacAddr>, String> {
            m.as_deref()
                .map(|s| s.parse::<MacAddr>().map_err(|e| format!("MAC {s:?}: {e}")))
                .transpose()
        };
        let (given_src, given_dst) = (mac(&f.src_mac)?, mac(&f.dst_mac)?);
        let src_mac = given_src
            .or_else(|| bound(f.src))
            .unwrap_or(MacAddr([2, 0, 0, 0, 0, 1]));
        let gateway = t.vnis.get(usize::from(vni)).and_then(|v| v.gateway);
        let dst_mac = given_dst
            .or_else(|| bound(f.dst))
            .or_else(|| {
                gateway
                    .filter(|(cidr, _)| !cidr.contains(f.dst))
                    .map(|g| g.1)
            })
            .or_else(|| self.st.router.neighbor_of(vni, f.dst))
            .unwrap_or(MacAddr([2, 0, 0, 0, 0, 2]));
        let (protocol, l4) = match f.proto.as_str() {
            "tcp" => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&f.sport.to_be_bytes());
                h[2..4].copy_from_slice(&f.dport.to_be_bytes());
                h[4..8].copy_from_slice(&1000u32.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = 0x02; // SYN: a connection's first segment
                h[14..16].copy_from_slice(&65535u16.to_be_bytes());
                (IpProtocol::TCP, h)
            }
            "udp" => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&f.sport.to_be_bytes());
                h[2..4].copy_from_slice(&f.dport.to_be_bytes());
                h[4..6].copy_from_slice(&8u16.to_be_bytes());
                (IpProtocol::UDP, h)
            }
            "icmp" => {
                // An echo request with identifier `sport`.
                let mut h = vec![8u8, 0, 0, 0, 0, 0, 0, 1];
                h[4..6].copy_from_slice(&f.sport.to_be_bytes());
                let c = overlay::checksum::checksum(&h);
                h[2..4].copy_from_slice(&c.to_be_bytes());
                (IpProtocol::ICMP, h)
            }
            p => return Err(format!("protocol {p:?}: expected tcp, udp or icmp")),
        };
        let mut frame = vec![0u8; 14 + 20];
        frame[0..6].copy_from_slice(&dst_mac.0);
        frame[6..12].copy_from_slice(&src_mac.0);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let repr = ipv4::Repr {
            src_addr: f.src,
            dst_addr: f.dst,
            protocol,
            payload_len: l4.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: true,
        };
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
        repr.emit(&mut ip).map_err(|e| format!("{e:?}"))?;
        frame.extend_from_slice(&l4);
        let ph = overlay::PseudoHeader::V4 {
            src: f.src,
            dst: f.dst,
        };
        if protocol == IpProtocol::TCP {
            overlay::tcp::Packet::new_unchecked(&mut frame[34..]).fill_checksum(&ph);
        } else if protocol == IpProtocol::UDP {
            overlay::udp::Packet::new_unchecked(&mut frame[34..]).fill_checksum(&ph);
        }
        Ok(frame)
    }
}

// --- Live trace: the stages real packets went through.

/// Stages a live trace notes, at most.
pub const MAX_STAGES: usize = 14;

/// Which packets a live trace follows (None: any).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LiveFilter {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// An IP protocol number.
    pub proto: Option<u8>,
    /// Either port.
    pub port: Option<u16>,
}

impl LiveFilter {
    fn matches(&self, k: &crate::flows::Key) -> bool {
        let f = &k.flow;
        self.src.is_none_or(|a| a == f.src)
            && self.dst.is_none_or(|a| a == f.dst)
            && self.proto.is_none_or(|p| p == f.protocol.0)
            && self.port.is_none_or(|p| p == f.src_port || p == f.dst_port)
    }
}

/// What one stage left in a packet's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    pub stage: &'static str,
    pub next: super::meta::Next,
    pub vni: u16,
    pub verdict: Verdict,
    pub src_identity: IdentityId,
}

/// One traced packet: its flow and each stage's note.
#[derive(Debug, Clone, Copy)]
pub struct LiveRecord {
    pub key: crate::flows::Key,
    pub from: From,
    pub len: usize,
    pub notes: [Option<Note>; MAX_STAGES],
}

/// A running live trace (the worker's end).
#[derive(Debug)]
pub struct LiveTap {
    filter: LiveFilter,
    remaining: u32,
    out: crossbeam_channel::Sender<LiveRecord>,
    /// Per packet of the burst: its notes so far (allocated at start).
    notes: Vec<[Option<Note>; MAX_STAGES]>,
    counts: Vec<u8>,
}

impl LiveTap {
    /// Follow the next `count` packets that match `filter`.
    pub fn new(
        filter: LiveFilter,
        count: u32,
        out: crossbeam_channel::Sender<LiveRecord>,
    ) -> LiveTap {
        LiveTap {
            filter,
            remaining: count,
            out,
            notes: vec![[None; MAX_STAGES]; super::VECTOR_CAP],
            counts: vec![0; super::VECTOR_CAP],
        }
    }

    /// A new burst.
    #[inline(never)]
    pub(super) fn begin(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
    }

    /// What `stage` left in each packet of `v`.
    #[inline(never)]
    pub(super) fn note(&mut self, stage: &'static str, v: &super::meta::Vector) {
        for (i, m) in v.meta.iter().enumerate().take(v.len()) {
            let (Some(n), Some(c)) = (self.notes.get_mut(i), self.counts.get_mut(i)) else {
                break;
            };
            if let Some(slot) = n.get_mut(usize::from(*c)) {
                *slot = Some(Note {
                    stage,
                    next: m.next,
                    vni: m.vni,
                    verdict: m.verdict,
                    src_identity: m.src_identity,
                });
                *c += 1;
            }
        }
    }

    /// After the last stage: hand over the packets that match. Returns
    /// false once the count is reached (the trace is over).
    pub(super) fn end(&mut self, v: &super::meta::Vector) -> bool {
        for (i, m) in v.meta.iter().enumerate().take(v.len()) {
            if self.remaining == 0 {
                break;
            }
            if m.pkt.kind != Kind::Ip || !self.filter.matches(&m.pkt.key) {
                continue;
            }
            let Some(n) = self.notes.get(i) else { break };
            let rec = LiveRecord {
                key: m.pkt.key,
                from: m.from,
                len: 0,
                notes: *n,
            };
            if self.out.try_send(rec).is_ok() {
                self.remaining -= 1;
            }
        }
        self.remaining > 0
    }
}
