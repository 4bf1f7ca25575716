//! Stage: classify. Every frame is parsed once here; everything later reads
//! the metadata. Then, in order:
//!
//! 1. **Fail closed** (identity on): a frame goes on only if it parsed as
//!    an IP flow or as ARP; deep tag stacks, extension chains the parser
//!    gives up on, unknown EtherTypes and non-first fragments are dropped,
//!    each under its own reason. With identity off, warden is a plain
//!    switch and passes what it cannot classify.
//! 2. **Port security and ARP** (identity on): a bound port sends only from
//!    its workloads' MAC and IP; nobody else (another port, the underlay)
//!    may use a bound MAC or IP, in a frame or in ARP.
//! 3. **The flow table**, with or without identity: a packet of a known
//!    flow must come from the flow's origin and never changes it; a reply
//!    (reverse of a known flow) must come from where the forward direction
//!    was sent; an ICMP error is admitted only as related to the flow it
//!    quotes, from there. A new flow gets its source identity (verified
//!    header, GBP, address map, local binding, or unauthenticated) and the
//!    policy's decision (`decide`: ingress, egress, gateway; see
//!    docs/policy.md), for switched and routed frames alike, kept in its
//!    entry; denied flows are counted and never inserted, rejected ones
//!    answered. The first reply of a provisional flow decides it again.

use std::net::IpAddr;

use super::ingress_identity;
use overlay::MacAddr;

use super::meta::{From, Kind, Meta, Next, Pkt, Vector, ANSWER, PLAIN, RECHECK};
use super::tables::{IdentityTables, PeerIdent, Tables};
use super::{fwd_cache, Ctx};
use crate::buffer::Buf;
use crate::counters::{DropReason, RunTally};
use crate::flows::{Egress, FlowEntry, FlowRef, IdentitySource, InsertError, Key, Origin, Verdict};
use crate::learn::{LearnEnd, LearnL7, LearnRecord};
use identity::IdentityId;

/// Which of the stages that most bursts skip this one needs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Needs {
    pub inspect: bool,
    pub revoke: bool,
    /// A packet goes on to the switch (or route, inspect, revoke): not
    /// every one was forwarded by its flow's cached decision.
    pub switch: bool,
}

// Inlined into the driver: whether LLVM does so on its own changes with
// unrelated edits, and costs about 12 instructions per packet when not.
#[inline(always)]
pub(super) fn run(cx: &mut Ctx, v: &mut Vector) -> Needs {
    let mut needs = Needs::default();
    let mut passed = None;
    // Until a packet of this burst goes on to a stage that may change the
    // FDB or the neighbors (switch, route, and inspect or revoke, which
    // hand packets to switch), a flow's cached decision applies right
    // here and the packet skips the switch stage; after that, the switch
    // stage applies it, in packet order.
    let mut in_order = true;
    let mut routed = RunTally::new();
    let mut hits = 0u64;
    for (buf, m) in v.bufs.iter_mut().zip(v.meta.iter_mut()) {
        if m.next != Next::Classify {
            continue;
        }
        let mut next = classify(cx, buf, m, &mut passed);
        if next == Next::Switch && in_order {
            if let Some(n) = fwd_cache::at_classify(cx, buf, m, &mut routed) {
                next = n;
                hits += 1;
            }
        }
        in_order &= !matches!(
            next,
            Next::Switch | Next::Route | Next::Inspect | Next::Revoke
        );
        m.next = next;
        needs.inspect |= next == Next::Inspect;
        needs.revoke |= next == Next::Revoke;
    }
    needs.switch = !in_order;
    let c = cx.c;
    routed.finish(|(a, b), n, _| super::route::count_routed(c, a, b, n));
    if hits > 0 {
        c.fwd_cache_hits.add(hits);
    }
    needs
}

/// The sender of an IP packet as port security sees it: where it came
/// from, its VNI, source MAC (as a word) and source address.
type Sender = (From, u16, u64, IpAddr);

/// `passed`: the last IP sender that passed port security in this burst
/// (the check reads only the sender and the config tables, which do not
/// change within a burst: the same sender passes again).
fn classify(
    cx: &mut Ctx,
    buf: &mut Option<Buf>,
    m: &mut Meta,
    passed: &mut Option<Sender>,
) -> Next {
    let frame = buf.as_ref().map_or(&[][..], |b| b.frame());
    if let Err(reason) = super::parse::parse_into(frame, m.vni, &mut m.pkt) {
        if cx.t.identity.is_some() || frame.len() < overlay::ethernet::HEADER_LEN {
            return Next::Drop(reason);
        }
        // A plain switch forwards what it cannot classify, without a flow.
        m.pkt.kind = Kind::Unknown;
        if !m.pkt.src_mac.is_unicast() {
            return Next::Drop(DropReason::BadSourceMac);
        }
        return Next::Switch;
    }
    // Before any state is made for it: no station sends from a group MAC.
    if m.from != From::Router && !m.pkt.src_mac.is_unicast() {
        return Next::Drop(DropReason::BadSourceMac);
    }
    let origin = match m.from {
        From::Peer(r) => Origin::Peer(r),
        From::Port(p) => Origin::Port {
            port: p,
            mac: m.pkt.src_mac,
        },
        From::Router => return Next::Switch,
    };
    if let Some(id) = &cx.t.identity {
        if let Err(reason) = check_sender(cx.t, id, m, frame, passed) {
            return Next::Drop(reason);
        }
    }
    match m.pkt.kind {
        Kind::Ip => {
            // Once per packet: the flow cache and the VXLAN source port use it.
            m.hash = overlay::flow_hash(&m.pkt.key.flow);
            flow(cx, buf, m, origin)
        }
        Kind::IcmpError => related(cx, frame, m, origin),
        Kind::Arp | Kind::Unknown => Next::Switch,
    }
}

/// [`source_check`], unless this IP sender passed it already in this burst.
#[inline(always)]
fn check_sender(
    t: &Tables,
    id: &IdentityTables,
    m: &Meta,
    frame: &[u8],
    passed: &mut Option<Sender>,
) -> Result<(), DropReason> {
    if let Some((from, vni, mac, ip)) = *passed {
        if m.pkt.kind == Kind::Ip
            && m.pkt.src_mac.to_u64() == mac
            && m.pkt.key.flow.src == ip
            && m.vni == vni
            && m.from == from
        {
            return Ok(());
        }
    }
    check_new_sender(t, id, m, frame, passed)
}

/// [`check_sender`] for a sender not seen yet in this burst.
#[inline(never)]
fn check_new_sender(
    t: &Tables,
    id: &IdentityTables,
    m: &Meta,
    frame: &[u8],
    passed: &mut Option<Sender>,
) -> Result<(), DropReason> {
    let (ip_src, _) = m.pkt.addrs(frame);
    source_check(t, id, m.from, m.vni, &m.pkt, ip_src)?;
    if m.pkt.kind == Kind::Ip {
        *passed = Some((m.from, m.vni, m.pkt.src_mac.to_u64(), ip_src));
    }
    Ok(())
}

/// Port security and ARP: bound MACs and IPs are used only by their
/// workloads, from their ports. `ip_src`: the packet's own source address
/// ([`Pkt::addrs`]).
pub(super) fn source_check(
    t: &Tables,
    id: &IdentityTables,
    from: From,
    vni: u16,
    pkt: &Pkt,
    ip_src: IpAddr,
) -> Result<(), DropReason> {
    let arp = pkt.kind == Kind::Arp;
    let (arp_mac, arp_ip) = pkt.arp_sender;
    // The gateway's own MAC and address are warden's: nobody else's to claim.
    if let Some((cidr, gw_mac)) = t.vnis[usize::from(vni)].gateway {
        if arp && (arp_mac == gw_mac || arp_ip == cidr.address()) {
            return Err(DropReason::ArpSpoofed);
        }
        if pkt.src_mac == gw_mac {
            return Err(DropReason::BoundMacElsewhere);
        }
        if !arp && pkt.kind != Kind::Unknown && ip_src == IpAddr::V4(cidr.address()) {
            return Err(DropReason::PortSecurityIp);
        }
    }
    if let From::Port(p) = from {
        if id
            .port_identity
            .get(usize::from(p))
            .is_some_and(Option::is_some)
        {
            let Some(b) = id.binding_at_mac(vni, pkt.src_mac).filter(|b| b.port == p) else {
                return Err(DropReason::PortSecurityMac);
            };
            if arp {
                let ip_ok = IpAddr::V4(arp_ip) == b.ip || arp_ip.is_unspecified();
                if arp_mac != b.mac || !ip_ok {
                    return Err(DropReason::ArpSpoofed);
                }
            } else if pkt.kind != Kind::Unknown && ip_src != b.ip {
                return Err(DropReason::PortSecurityIp);
            }
            return Ok(());
        }
    }
    // An unbound port or the underlay: no bound MAC or IP may appear.
    if arp
        && (id.binding_at_mac(vni, arp_mac).is_some()
            || id.binding_at_ip(vni, IpAddr::V4(arp_ip)).is_some())
    {
        return Err(DropReason::ArpSpoofed);
    }
    if id.binding_at_mac(vni, pkt.src_mac).is_some() {
        return Err(DropReason::BoundMacElsewhere);
    }
    if !arp && pkt.kind != Kind::Unknown && id.binding_at_ip(vni, ip_src).is_some() {
        return Err(DropReason::PortSecurityIp);
    }
    Ok(())
}

/// An ICMP error: admitted only as related to the flow it quotes, arriving
/// from where that flow was sent. It never has a flow of its own.
fn related(cx: &Ctx, frame: &[u8], m: &mut Meta, origin: Origin) -> Next {
    if cx.t.identity.is_none() {
        return Next::Switch;
    }
    let pkt = &m.pkt;
    let (_, ip_dst) = pkt.addrs(frame);
    // The quoted flow: known, sent to where this error comes from, and the
    // error addressed to that flow's source. It may go only there. A flow
    // the gateway routed here was keyed in the VNI it came from, which is
    // where the error is routed back to.
    let mut key = pkt.key;
    let mut r = cx.st.flows.lookup(&key);
    if r.is_none() {
        if let Some(back) = routed_vni(cx.t, m.vni, pkt.dst_mac, ip_dst) {
            key.vni = back;
            r = cx.st.flows.lookup(&key);
        }
    }
    let quoted = r
        .and_then(|r| cx.st.flows.get(r))
        .filter(|e| e.egress.admits(origin) && ip_dst == e.key.flow.src);
    let Some(e) = quoted else {
        return Next::Drop(DropReason::IcmpUnrelated);
    };
    m.reply_to = Some(e.origin);
    // Wardens never stamp errors: a header on one was put there by someone else.
    if matches!(identity::stamp::find(frame), Ok(Some(_)) | Err(_)) {
        return Next::Drop(DropReason::IdentityMalformed);
    }
    Next::Switch
}

fn flow(cx: &mut Ctx, buf: &mut Option<Buf>, m: &mut Meta, origin: Origin) -> Next {
    let Some(b) = buf.as_mut() else {
        return Next::Done;
    };
    let pkt = &m.pkt;
    let now = cx.st.now_s;
    let len = b.len() as u64;
    // The identity header, verified, from a warden peer (or refused).
    let header = match m.from {
        From::Peer(r) if cx.t.identity.is_some() => {
            let vni_id = cx.t.vnis[usize::from(m.vni)].id.get();
            match ingress_identity::verify(cx, r, b.frame(), pkt, vni_id) {
                Ok(h) => h,
                Err(reason) => return Next::Drop(reason),
            }
        }
        _ => None,
    };
    let header_id = header.map(|(h, _)| h.id);
    let mut seen = Seen::default();
    let mut found = cx.st.flows.lookup_hashed(&pkt.key, m.hash);
    if let Some(r) = found {
        if opens_again(cx, r, pkt.tcp) {
            forget_revoked(cx, r);
            found = None;
        }
    }
    let pkt = &m.pkt;
    // A known flow's packet with nothing to do but forward: its frames may
    // take the express lane once the switch has cached where they go.
    let mut plain = found.is_some() && header.is_none() && cx.t.identity.is_none();
    let r = match found {
        Some(r) => match known(cx, r, origin, header_id, len, pkt.dst_mac, &mut seen) {
            Ok(()) => r,
            Err(reason) => return Next::Drop(reason),
        },
        None => match new_flow(cx, m, origin, header_id, len, tcp_ack(b.frame(), m.pkt.l3)) {
            Ok(r) => {
                if let Some(e) = cx.st.flows.get(r) {
                    seen = Seen::of(e);
                }
                r
            }
            Err((DropReason::PolicyRejected, dst)) => return reject(cx, buf, m, dst),
            Err((reason, _)) => return Next::Drop(reason),
        },
    };
    m.flow = r;
    (m.verdict, m.src_identity, m.egress) = (seen.verdict, seen.src, seen.egress);
    if seen.verdict == Verdict::Revoked {
        // A reloaded policy took it back: TCP gets both ends reset (unless
        // this is a RST itself), anything else stops here.
        let tcp_not_rst = m.pkt.tcp.is_some_and(|(flags, _)| flags & 0x04 == 0);
        return if tcp_not_rst && cx.st.reject_tokens > 0 {
            Next::Revoke
        } else {
            Next::Drop(DropReason::PolicyRevoked)
        };
    }
    if seen.recheck {
        m.flags |= RECHECK;
        plain = false;
    }
    m.l7 = seen.l7;
    if header.is_some() {
        if let Some(e) = cx.st.flows.get_mut(r) {
            e.last_header = Some(now);
        }
    }
    if let Some((h, found)) = header {
        if h.is_announce() {
            // Verified and recorded: its job is done.
            cx.c.identity_announces.inc();
            return Next::Done;
        }
        if let Err(reason) = ingress_identity::strip(b, &found) {
            return Next::Drop(reason);
        }
    }
    if m.l7 != crate::l7flows::NO_L7 {
        plain = false;
        if m.l7 & crate::l7flows::SERVER_SIDE == 0 {
            return Next::Inspect;
        }
        // A server's segment of an inspected flow: only its sequence.
        let slot = m.l7 & !crate::l7flows::SERVER_SIDE;
        m.l7 = crate::l7flows::NO_L7;
        if let Some((seq, _, flags, payload)) =
            super::inspect::segment(b.frame(), usize::from(m.pkt.l3))
        {
            let len = payload.len() as u32 + u32::from(flags & 0x03 != 0);
            cx.st.l7.server_segment(slot, r, seq, len);
        }
    }
    // An answer from a DNS server to the workload that asked.
    if seen.verdict == Verdict::Reply
        && m.pkt.key.flow.protocol == overlay::IpProtocol::UDP
        && m.pkt.key.flow.src_port == 53
    {
        plain = false;
        if let Some(b) = buf.as_ref() {
            learn_fqdn(cx, b.frame(), usize::from(m.pkt.l3), seen.opener);
        }
    }
    if plain {
        m.flags |= PLAIN;
    }
    Next::Switch
}

/// A SYN (without ACK) on a flow a reload revoked: a new connection that
/// reuses the tuple, decided afresh.
fn opens_again(cx: &Ctx, r: FlowRef, tcp: Option<(u8, u32)>) -> bool {
    let syn = tcp.is_some_and(|(f, _)| f & 0x12 == 0x02);
    syn && cx
        .st
        .flows
        .get(r)
        .is_some_and(|e| e.verdict == Verdict::Revoked)
}

/// Remove revoked entry `r` and its reply direction.
fn forget_revoked(cx: &mut Ctx, r: FlowRef) {
    let Some(e) = cx.st.flows.get(r).copied() else {
        return;
    };
    cx.st.flows.remove(r);
    // The reply is keyed in the VNI it came from (another one when
    // routed): a lookup per configured VNI, never a scan of the table.
    let mut back = e.key.reversed();
    for v in 0..cx.t.vnis.len() as u16 {
        back.vni = v;
        if let Some(b) = cx.st.flows.lookup(&back) {
            if cx
                .st
                .flows
                .get(b)
                .is_some_and(|x| x.verdict == Verdict::Revoked)
            {
                cx.st.flows.remove(b);
                return;
            }
        }
    }
}

/// The ACK number of a TCP segment carrying ACK (L3 at `l3`).
fn tcp_ack(f: &[u8], l3: u16) -> Option<u32> {
    let l3 = usize::from(l3);
    if f.get(l3)? >> 4 != 4 || *f.get(l3 + 9)? != 6 {
        return None;
    }
    let t = l3 + usize::from(f.get(l3)? & 0x0f) * 4;
    let h = f.get(t..t + 14)?;
    (h[13] & 0x10 != 0).then(|| u32::from_be_bytes([h[8], h[9], h[10], h[11]]))
}

/// What later stages need from a packet's flow entry.
#[derive(Debug, Clone, Copy)]
struct Seen {
    verdict: Verdict,
    src: IdentityId,
    egress: Egress,
    recheck: bool,
    l7: u32,
    /// For a reply: who opened the flow.
    opener: IdentityId,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            verdict: Verdict::NoPolicy,
            src: IdentityId::UNAUTHENTICATED,
            egress: Egress::Unknown,
            recheck: false,
            l7: crate::l7flows::NO_L7,
            opener: IdentityId::UNAUTHENTICATED,
        }
    }
}

impl Seen {
    fn of(e: &FlowEntry) -> Seen {
        Seen {
            verdict: e.verdict,
            src: e.src_identity,
            egress: e.egress,
            recheck: e.recheck,
            l7: e.l7,
            opener: e.dst_identity,
        }
    }
}

/// A rejected flow's opening packet becomes its answer (a TCP RST or an
/// ICMP port unreachable, see `reject.rs`), sent back where it came from.
/// No answer (other protocols, an RST, no buffer): dropped silently.
fn reject(cx: &mut Ctx, buf: &mut Option<Buf>, m: &mut Meta, dst: IdentityId) -> Next {
    cx.c.count_drop(DropReason::PolicyRejected);
    if cx.st.reject_tokens == 0 {
        cx.c.policy.reject_answers_limited.inc();
        return Next::Done;
    }
    let (Some(old), Some(mut out)) = (buf.as_ref(), cx.pool.get()) else {
        return Next::Done;
    };
    out.set_len(crate::buffer::BUF_SIZE);
    let built = super::reject::answer(old.frame(), usize::from(m.pkt.l3), out.frame_mut());
    let Some((n, kind)) = built else {
        cx.pool.put(out);
        return Next::Done;
    };
    out.set_len(n);
    if let Some(old) = buf.replace(out) {
        cx.pool.put(old);
    }
    cx.st.reject_tokens -= 1;
    cx.c.policy.reject_answers.inc();
    // What the stamp stage needs to vouch for the answer toward a warden:
    // it speaks for the destination, in the reverse direction.
    m.flags |= ANSWER;
    m.flow = FlowRef::NONE;
    m.src_identity = dst;
    m.pkt.key = m.pkt.key.reversed();
    m.pkt.tcp = match kind {
        super::reject::Answer::TcpReset { seq } => Some((0x04, seq)),
        super::reject::Answer::PortUnreachable => {
            // An ICMP error: never stamped (stamp_answer goes by protocol).
            m.pkt.key.flow.protocol = overlay::IpProtocol::ICMP;
            None
        }
    };
    m.pkt.kind = Kind::Unknown;
    match m.from {
        From::Port(p) => Next::Deliver(p),
        From::Peer(r) => Next::Encap(r),
        From::Router => Next::Done,
    }
}

/// A packet of a flow in the table: from its origin only; it never
/// rewrites the entry's origin.
fn known(
    cx: &mut Ctx,
    r: FlowRef,
    origin: Origin,
    header_id: Option<IdentityId>,
    len: u64,
    dst_mac: MacAddr,
    out: &mut Seen,
) -> Result<(), DropReason> {
    let now = cx.st.now_s;
    // Counted only when it comes from the flow's origin.
    let Some(e) = cx.st.flows.touch(r, origin, now, len) else {
        return Err(DropReason::FlowOriginMismatch);
    };
    *out = Seen::of(e);
    let Some(hid) = header_id else {
        return Ok(());
    };
    if hid == e.src_identity && e.source == IdentitySource::Header {
        return Ok(());
    }
    let Some(e) = cx.st.flows.get_mut(r) else {
        return Err(DropReason::FlowOriginMismatch);
    };
    // The same authenticated origin now vouches for another identity (a
    // restarted workload): decide again.
    let (key, reply, known_dst) = (e.key, e.verdict == Verdict::Reply, e.dst_identity);
    e.src_identity = hid;
    e.source = IdentitySource::Header;
    out.src = hid;
    if reply {
        return Ok(());
    }
    let known_dst = (!e.recheck).then_some(known_dst);
    let d = decide(cx, &key, Some(dst_mac), hid, known_dst);
    if matches!(d.verdict, Verdict::Deny | Verdict::Reject) {
        if let Some(mut denied) = cx.st.flows.get(r).copied() {
            denied.verdict = d.verdict;
            denied.rule = d.rule;
            cx.st.record_denial(denied);
        }
        cx.st.flows.remove(r);
        return Err(DropReason::PolicyDenied);
    }
    if let Some(e) = cx.st.flows.get_mut(r) {
        e.verdict = d.verdict;
        e.rule = d.rule;
        e.dst_identity = d.dst;
        e.recheck = d.recheck;
        *out = Seen::of(e);
    }
    Ok(())
}

/// A packet no entry knows: a reply to a known flow, or a new flow. A
/// refused flow gives the reason and the destination's identity.
fn new_flow(
    cx: &mut Ctx,
    m: &Meta,
    origin: Origin,
    header_id: Option<IdentityId>,
    len: u64,
    reply_ack: Option<u32>,
) -> Result<FlowRef, (DropReason, IdentityId)> {
    let none = |reason| (reason, IdentityId::UNAUTHENTICATED);
    let (vni, pkt) = (m.vni, &m.pkt);
    let key = pkt.key;
    let now = cx.st.now_s;
    let (src, source) = source_identity(cx, m.from, vni, m.gbp, pkt, header_id).map_err(none)?;
    let mut e = FlowEntry::new(key, origin, now);
    e.src_identity = src;
    e.source = source;
    e.packets = 1;
    e.bytes = len;
    // The reverse direction: for a routed frame it was keyed in the VNI
    // this one is routed into.
    let mut rk = key.reversed();
    if let Some(out) = routed_vni(cx.t, vni, pkt.dst_mac, key.flow.dst) {
        rk.vni = out;
    }
    if let Some(fwd) = cx.st.flows.lookup(&rk) {
        let Some(f) = cx.st.flows.get(fwd).copied() else {
            return Err(none(DropReason::ReplyWrongOrigin));
        };
        if !f.egress.admits(origin) {
            return Err(none(DropReason::ReplyWrongOrigin));
        }
        if f.recheck {
            recheck(cx, fwd, &f, src, reply_ack).map_err(none)?;
        }
        // A flooded flow takes its first reply's origin as its egress: later
        // "replies" from elsewhere are refused.
        if let Some(f) = cx.st.flows.get_mut(fwd) {
            if f.egress == Egress::Flood {
                f.egress = match origin {
                    Origin::Peer(r) => Egress::Peer(r),
                    Origin::Port { port, .. } => Egress::Port(port),
                };
            }
        }
        e.verdict = if cx.t.identity.is_some() {
            Verdict::Reply
        } else {
            Verdict::NoPolicy
        };
        e.dst_identity = f.src_identity;
        let r = insert(cx, e, m.hash).map_err(none)?;
        // Mutual: the forward entry learns who answered.
        let mut inspected = crate::l7flows::NO_L7;
        if let Some(f) = cx.st.flows.get_mut(fwd) {
            f.dst_identity = src;
            inspected = f.l7;
        }
        // An inspected flow's replies show where the server's stream is.
        if inspected != crate::l7flows::NO_L7 {
            cx.st.l7.set_reply(inspected, r);
            if let Some(e) = cx.st.flows.get_mut(r) {
                e.l7 = inspected | crate::l7flows::SERVER_SIDE;
            }
        }
        cx.st.flows.establish(r);
        cx.st.flows.establish(fwd);
        return Ok(r);
    }
    let d = decide(cx, &key, Some(pkt.dst_mac), src, None);
    e.verdict = d.verdict;
    e.rule = d.rule;
    e.dst_identity = d.dst;
    e.recheck = d.recheck;
    if let (Some(ins), false) = (
        d.inspect,
        matches!(d.verdict, Verdict::Deny | Verdict::Reject),
    ) {
        return inspected(cx, e, m.hash, d.rule, ins, pkt.tcp).map_err(none);
    }
    match d.verdict {
        Verdict::Deny => {
            cx.st.record_denial(e);
            Err(none(DropReason::PolicyDenied))
        }
        Verdict::Reject => {
            cx.st.record_denial(e);
            Err((DropReason::PolicyRejected, d.dst))
        }
        _ => insert(cx, e, m.hash).map_err(none),
    }
}

/// The first reply of a flow allowed before its destination was known:
/// decide again now that the responder is (`responder`: its verified
/// header, its VTEP's map, or unauthenticated). Refused, the flow is cut
/// both ways: the forward entry goes and the reply is dropped.
fn recheck(
    cx: &mut Ctx,
    fwd: FlowRef,
    f: &FlowEntry,
    responder: IdentityId,
    reply_ack: Option<u32>,
) -> Result<(), DropReason> {
    cx.c.policy.rechecked.inc();
    let d = decide(cx, &f.key, None, f.src_identity, Some(responder));
    if matches!(d.verdict, Verdict::Deny | Verdict::Reject) {
        let mut denied = *f;
        denied.verdict = d.verdict;
        denied.rule = d.rule;
        denied.dst_identity = responder;
        denied.recheck = false;
        cx.st.record_denial(denied);
        cx.st.flows.remove(fwd);
        return Err(DropReason::PolicyResponderDenied);
    }
    if let Some(e) = cx.st.flows.get_mut(fwd) {
        e.verdict = d.verdict;
        e.rule = d.rule;
        e.dst_identity = responder;
        e.recheck = false;
    }
    // Now known to be an L7 rule's flow: inspected here from now on (the
    // destination may be no warden's: an address outside, an FQDN). The
    // reply's ACK is where the client's bytes start.
    if let (Some(ins), Some(rule)) = (d.inspect, d.rule) {
        let is_tcp = f.key.flow.protocol == overlay::IpProtocol::TCP;
        let sync = if is_tcp { reply_ack } else { None };
        match parser_for(&f.key, ins, is_tcp && sync.is_some()) {
            Some(p) => open_inspection(cx, fwd, rule, p, sync)?,
            None => {
                cx.st.flows.remove(fwd);
                return Err(DropReason::L7Refused);
            }
        }
    }
    Ok(())
}

/// A new flow whose every request is decided: its entry, and its slot in
/// the inspection table. TCP opened by a SYN, and DNS over UDP, can be
/// inspected; anything else, or a full table, refuses the flow (never
/// admitted uninspected).
fn inspected(
    cx: &mut Ctx,
    e: FlowEntry,
    hash: u32,
    rule: Option<policy::RuleId>,
    ins: policy::Inspect,
    tcp: Option<(u8, u32)>,
) -> Result<FlowRef, DropReason> {
    let syn = tcp.is_some_and(|(flags, _)| flags & super::meta::TCP_SYN != 0);
    // Picked up mid-stream, or a protocol no clause here parses: refused.
    let parser = parser_for(&e.key, ins, syn).ok_or(DropReason::L7Refused)?;
    let rule = rule.ok_or(DropReason::L7Refused)?;
    let r = insert(cx, e, hash)?;
    open_inspection(cx, r, rule, parser, None)?;
    Ok(r)
}

/// The parser a flow of `key` starts with: detection on TCP opened by a
/// SYN (`syn`), DNS queries on UDP when a DNS clause can decide them.
pub(super) fn parser_for(
    key: &Key,
    ins: policy::Inspect,
    syn: bool,
) -> Option<crate::l7flows::Parser> {
    match key.flow.protocol {
        // Each datagram is a whole query: decided alone.
        overlay::IpProtocol::UDP if ins.parses(l7::detect::Proto::Dns) => {
            Some(crate::l7flows::Parser::DnsUdp)
        }
        overlay::IpProtocol::TCP if syn => {
            let d = l7::detect::Detector::new(l7::detect::Transport::Tcp, key.flow.dst_port);
            Some(crate::l7flows::Parser::Detect(d, ins))
        }
        _ => None,
    }
}

/// Give flow `r` an inspection slot (synchronised at `sync`, the client's
/// next sequence number, when the handshake is already past); a full
/// table refuses the flow: its entry goes.
pub(super) fn open_inspection(
    cx: &mut Ctx,
    r: FlowRef,
    rule: policy::RuleId,
    parser: crate::l7flows::Parser,
    sync: Option<u32>,
) -> Result<(), DropReason> {
    let flows = &cx.st.flows;
    let origin = flows
        .get(r)
        .map_or(usize::MAX, |e| flows.origin_slot(e.origin));
    let origin = u16::try_from(origin).unwrap_or(u16::MAX);
    let opened = cx
        .st
        .l7
        .open(r, origin, rule, parser, cx.pool, |f| flows.get(f).is_some());
    let slot = match opened {
        Ok(slot) => slot,
        Err(short) => {
            if short == crate::l7flows::Short::OriginShare {
                cx.c.policy.l7_share_limited.inc();
            }
            cx.st.flows.remove(r);
            return Err(DropReason::L7Unavailable);
        }
    };
    if let Some(seq) = sync {
        cx.st.l7.sync(slot, seq);
    }
    if let Some(entry) = cx.st.flows.get_mut(r) {
        entry.l7 = slot;
    }
    Ok(())
}

/// Record flow `key` from `src` to `dst` (and the request `l7`, for an
/// inspected flow) in the learn table.
pub(super) fn record_learn(
    cx: &mut Ctx,
    src: IdentityId,
    dst: Option<IdentityId>,
    key: &Key,
    l7: LearnL7,
) {
    let Some(id) = &cx.t.identity else { return };
    let p = &id.policy;
    let end = |i: Option<IdentityId>, a: IpAddr| match (i, a) {
        (Some(i), _) if p.subject(i) != policy::Subject::Unauthenticated => LearnEnd::Identity(i),
        (_, IpAddr::V4(a)) => LearnEnd::Addr(a),
        _ => LearnEnd::Unknown,
    };
    let ports = matches!(
        key.flow.protocol,
        overlay::IpProtocol::TCP | overlay::IpProtocol::UDP
    );
    let rec = LearnRecord {
        src: end(Some(src), key.flow.src),
        dst: end(dst, key.flow.dst),
        protocol: key.flow.protocol.0,
        port: if ports { key.flow.dst_port } else { 0 },
        l7,
    };
    if cx.st.learn.record(rec) {
        cx.c.policy.learned.inc();
    } else {
        cx.c.policy.learn_dropped.set(cx.st.learn.dropped());
    }
}

/// What learn keeps of a request.
pub(super) fn learn_l7(req: &policy::L7Request<'_>) -> LearnL7 {
    use crate::learn::Text;
    let kept = match *req {
        policy::L7Request::Http { method, path, .. } => l7::http::Method::from_bytes(method)
            .and_then(|m| l7::http::Method::ALL.iter().position(|x| *x == m))
            .zip(Text::path(path))
            .map(|(i, path)| LearnL7::Http {
                method: i as u8,
                path,
            }),
        policy::L7Request::Tls { sni: Some(n), .. } => {
            Text::new(n).map(|name| LearnL7::Tls { name })
        }
        policy::L7Request::Dns { name } => Text::new(name).map(|name| LearnL7::Dns { name }),
        _ => None,
    };
    kept.unwrap_or(LearnL7::None)
}

/// The policy's answer to one request of an inspected flow whose L4
/// decision was `first`, and whether learn mode wants it recorded.
pub(super) fn decide_request(
    t: &Tables,
    c: &crate::counters::WorkerCounters,
    q: Option<&policy::FlowQuery>,
    first: policy::RuleId,
    req: &policy::L7Request<'_>,
) -> (super::inspect::RequestVerdict, bool) {
    use super::inspect::RequestVerdict;
    let (Some(id), Some(q)) = (&t.identity, q) else {
        return (RequestVerdict::Deny, false);
    };
    c.policy.l7_requests.inc();
    let d = id.policy.compiled.request(q, first, req);
    let eff = d.effective();
    c.policy.hit(d.rule, eff.would_deny);
    let v = match eff.verdict {
        policy::Verdict::Forward if eff.would_deny => RequestVerdict::WouldDeny,
        policy::Verdict::Forward => RequestVerdict::Allow,
        policy::Verdict::Drop | policy::Verdict::Reject => RequestVerdict::Deny,
    };
    (v, eff.learn)
}

/// Insert `e`, whose key hashes (`overlay::flow_hash`) to `hash`.
fn insert(cx: &mut Ctx, e: FlowEntry, hash: u32) -> Result<FlowRef, DropReason> {
    match cx.st.flows.insert_hashed(e, hash) {
        Ok(r) => {
            if e.verdict != Verdict::Reply {
                cx.st.log_flow(crate::flowlog::EventKind::Opened, &e, None);
            }
            Ok(r)
        }
        Err(InsertError::Full) => Err(DropReason::FlowTableFull),
        // Looked up just before: cannot happen; refuse rather than guess.
        Err(InsertError::Exists) => Err(DropReason::FlowOriginMismatch),
    }
}

/// Who sent a packet that opens a flow.
pub(super) fn source_identity(
    cx: &Ctx,
    from: From,
    vni: u16,
    gbp: Option<u16>,
    pkt: &Pkt,
    header_id: Option<IdentityId>,
) -> Result<(IdentityId, IdentitySource), DropReason> {
    let Some(id) = &cx.t.identity else {
        return Ok((IdentityId::UNAUTHENTICATED, IdentitySource::None));
    };
    Ok(match from {
        From::Peer(r) => {
            let ident = &cx.t.peers[usize::from(r)].ident;
            match (header_id, ident) {
                (Some(h), _) => (h, IdentitySource::Header),
                // A warden vouches with a header or not at all.
                (None, PeerIdent::Warden { .. }) => return Err(DropReason::IdentityMissing),
                (None, PeerIdent::Vtep { .. }) => {
                    ingress_identity::from_vtep(id, ident, r, gbp, pkt.key.flow.src)
                }
            }
        }
        From::Port(p) => match id.binding_at_mac(vni, pkt.src_mac) {
            // Port security already checked MAC, port and IP.
            Some(b) if b.port == p => (b.identity, IdentitySource::LocalPort),
            _ => (IdentityId::UNAUTHENTICATED, IdentitySource::Unauthenticated),
        },
        From::Router => (IdentityId::UNAUTHENTICATED, IdentitySource::Unauthenticated),
    })
}

/// The VNI a frame to the gateway MAC is routed into, if it is routed.
pub(super) fn routed_vni(t: &Tables, vni: u16, dst_mac: MacAddr, dst: IpAddr) -> Option<u16> {
    let IpAddr::V4(dst) = dst else { return None };
    if t.gateway_mac(vni) != Some(dst_mac) || t.is_gateway_address(dst) {
        return None;
    }
    t.lookup_route(dst).map(|(out, _)| out)
}

/// The FQDN pattern bits the flow's destination address was learned for,
/// for its source (0 when the policy names no FQDN).
#[inline]
pub(super) fn fqdn_bits(
    st: &super::State,
    p: &super::tables::PolicyTables,
    src: IdentityId,
    key: &Key,
) -> u64 {
    match key.flow.dst {
        IpAddr::V4(a) if !p.compiled.fqdn_patterns().is_empty() => st.fqdn.mask(src, a, st.now_s),
        _ => 0,
    }
}

/// The policy question for flow `key` from `src` to `dst`.
pub(super) fn flow_query_for(
    st: &super::State,
    t: &Tables,
    key: &Key,
    src: IdentityId,
    dst: Option<IdentityId>,
) -> Option<policy::FlowQuery> {
    let p = &t.identity.as_ref()?.policy;
    let mut q = p.query(key, src, dst);
    q.dst_fqdns = fqdn_bits(st, p, src, key);
    Some(q)
}

/// The policy question for the flow of entry `flow`, both identities as
/// the entry knows them (a decided flow: the destination is known).
pub(super) fn flow_query(
    st: &super::State,
    t: &Tables,
    flow: FlowRef,
) -> Option<policy::FlowQuery> {
    let e = st.flows.get(flow)?;
    let p = &t.identity.as_ref()?.policy;
    let mut q = p.query(&e.key, e.src_identity, Some(e.dst_identity));
    q.dst_fqdns = fqdn_bits(st, p, e.src_identity, &e.key);
    Some(q)
}

/// A DNS answer coming back to the workload that asked (`querier`), on a
/// flow the policy allowed: the addresses it gives for a name an FQDN
/// selector matches become reachable for that workload until their TTL
/// runs out (`fqdn.rs`).
fn learn_fqdn(cx: &mut Ctx, frame: &[u8], l3: usize, querier: IdentityId) {
    let Some(id) = &cx.t.identity else { return };
    let patterns = id.policy.compiled.fqdn_patterns();
    if patterns.is_empty() {
        return;
    }
    let Some(msg) = super::inspect::udp_payload(frame, l3) else {
        return;
    };
    let mut name = l7::dns::NameBuf::new();
    let mut addrs = [l7::dns::Addr::UNSPECIFIED; 16];
    let Ok(answers) = l7::dns::parse_response(msg, &mut name, &mut addrs) else {
        return;
    };
    let mut mask = 0u64;
    for (k, pat) in patterns.iter().enumerate().take(64) {
        if l7::pattern::name_matches(pat.as_bytes(), answers.question.name) {
            mask |= 1 << k;
        }
    }
    if mask == 0 {
        return;
    }
    let now = cx.st.now_s;
    for a in addrs.iter().take(answers.count) {
        if let IpAddr::V4(v4) = a.ip {
            if cx.st.fqdn.learn(querier, v4, mask, a.ttl, now) {
                cx.c.policy.fqdn_learned.inc();
            } else {
                cx.c.policy.fqdn_refused.set(cx.st.fqdn.refused());
            }
        }
    }
}

/// A new flow's policy decision and what comes with it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decided {
    pub verdict: Verdict,
    pub rule: Option<policy::RuleId>,
    /// The destination's identity, when known here.
    pub dst: IdentityId,
    /// Decided without the destination's identity: ask again at the reply.
    pub recheck: bool,
    /// Its rule has an L7 clause: every request is decided (from this
    /// rule), by the parsers of these protocols.
    pub inspect: Option<policy::Inspect>,
}

/// Who a new flow's destination is, as known on this warden: a workload
/// bound here (in the VNI the frame is switched or routed into), an
/// address map of a plain VTEP behind which it sits, or unknown (a
/// workload behind another warden, which vouches for it in its reply).
pub(super) fn destination(
    t: &Tables,
    id: &IdentityTables,
    key: &Key,
    dst_mac: MacAddr,
) -> Option<IdentityId> {
    let dst_vni = routed_vni(t, key.vni, dst_mac, key.flow.dst).unwrap_or(key.vni);
    if let Some(b) = id.binding_at_ip(dst_vni, key.flow.dst) {
        return Some(b.identity);
    }
    let IpAddr::V4(a) = key.flow.dst else {
        return None;
    };
    id.maps
        .iter()
        .find(|(p, cidr, _)| {
            cidr.contains(a)
                && t.peers
                    .get(usize::from(*p))
                    .is_some_and(|r| r.carries(usize::from(dst_vni)))
        })
        .map(|(_, _, i)| *i)
}

/// The policy's decision for a new flow from `src` (switched or routed
/// alike), with the destination `dst` when the caller knows it better
/// (a reply that vouched for it, the port it is delivered to). Counts the
/// hit and records the flow in learn mode.
pub(super) fn decide(
    cx: &mut Ctx,
    key: &Key,
    dst_mac: Option<MacAddr>,
    src: IdentityId,
    dst: Option<IdentityId>,
) -> Decided {
    let Some(id) = &cx.t.identity else {
        return Decided {
            verdict: Verdict::NoPolicy,
            rule: None,
            dst: IdentityId::UNAUTHENTICATED,
            recheck: false,
            inspect: None,
        };
    };
    // What is addressed to warden's own gateway is answered by warden.
    if let (IpAddr::V4(a), Some(mac)) = (key.flow.dst, dst_mac) {
        if cx.t.gateway_mac(key.vni) == Some(mac) && cx.t.is_gateway_address(a) {
            return Decided {
                verdict: Verdict::Gateway,
                rule: None,
                dst: IdentityId::UNAUTHENTICATED,
                recheck: false,
                inspect: None,
            };
        }
    }
    let dst = dst.or_else(|| destination(cx.t, id, key, dst_mac?));
    let (decided, eff) = judge(cx, key, src, dst);
    cx.c.policy.hit(decided.rule, eff.would_deny);
    // A destination known only at its reply is recorded then, as who it is.
    if eff.learn && !decided.recheck {
        record_learn(cx, src, dst, key, LearnL7::None);
    }
    if decided.recheck {
        cx.c.policy.provisional.inc();
    }
    decided
}

/// The decision for a live flow after a reload: as [`decide`] with both
/// ends as the entry knows them, but nothing counted or learned (the flow
/// was, when it opened).
pub(super) fn redecide(cx: &Ctx, key: &Key, src: IdentityId, dst: Option<IdentityId>) -> Decided {
    judge(cx, key, src, dst).0
}

/// The policy's answer for `key` from `src` to `dst` (None: not known
/// here), and the effect its mode gives it.
fn judge(
    cx: &Ctx,
    key: &Key,
    src: IdentityId,
    dst: Option<IdentityId>,
) -> (Decided, policy::Effective) {
    let Some(id) = &cx.t.identity else {
        let none = Decided {
            verdict: Verdict::NoPolicy,
            rule: None,
            dst: IdentityId::UNAUTHENTICATED,
            recheck: false,
            inspect: None,
        };
        let forward = policy::Effective {
            verdict: policy::Verdict::Forward,
            would_deny: false,
            learn: false,
        };
        return (none, forward);
    };
    let p = &id.policy;
    let mut q = p.query(key, src, dst);
    q.dst_fqdns = fqdn_bits(cx.st, p, src, key);
    let d = p.compiled.lookup(&q);
    let eff = d.effective();
    let verdict = match eff.verdict {
        policy::Verdict::Drop => Verdict::Deny,
        policy::Verdict::Reject => Verdict::Reject,
        policy::Verdict::Forward if eff.learn => Verdict::Learn,
        policy::Verdict::Forward if eff.would_deny => Verdict::WouldDeny,
        policy::Verdict::Forward => Verdict::Allow,
    };
    let recheck = dst.is_none() && verdict != Verdict::Deny && verdict != Verdict::Reject;
    let decided = Decided {
        verdict,
        rule: d.rule,
        dst: dst.unwrap_or(IdentityId::UNAUTHENTICATED),
        recheck,
        // Inspected where the destination is known: at its own warden, or
        // where config says who it is (the opener's warden does not inspect
        // a provisional flow: the destination's warden does).
        inspect: match (d.l7 && !recheck, d.rule) {
            (true, Some(r)) => Some(p.compiled.inspect(&q, r)),
            _ => None,
        },
    };
    (decided, eff)
}
