//! Stage: L7 inspection of the client-to-server bytes of flows whose
//! policy rule carries an L7 clause (see docs/policy.md). Every request is
//! decided before any of its bytes reach the server:
//!
//! - Segments are taken in sequence order. A segment that continues the
//!   stream is fed to the parser (l7 crate); a retransmission of bytes the
//!   server already has passes; anything else (a gap, an overlap with bytes
//!   held or not yet seen) is dropped, and the client sends it again: the
//!   server never gets bytes the policy did not see.
//! - While a request head is incomplete, its segments are held (bounded,
//!   see `l7flows`) and released in order once every request in them is
//!   allowed. Bodies pass by their framing, uninspected.
//! - A request the policy does not allow, or bytes the parser refuses as
//!   malformed or ambiguous (smuggling, an oversized head), cut the
//!   connection: the held segments and the offending one are dropped, and
//!   both ends get a RST (the server at the first byte it has not seen,
//!   the client at its segment's ACK). The flow stays cut.
//!
//! Replies (server to client) are not inspected.

use l7::http::Event;

use super::meta::{From, Meta, Next, Vector, ANSWER};
use super::reject::{self, Toward};
use super::Ctx;
use crate::buffer::Buf;
use crate::counters::DropReason;
use crate::l7flows::{LastL7, Lent, Parser, Short};
use crate::learn::LearnL7;

pub(super) fn run(cx: &mut Ctx, v: &mut Vector) {
    let mut i = 0;
    while i < v.len() {
        if v.meta[i].next == Next::Inspect {
            v.meta[i].next = inspect(cx, v, i);
        }
        i += 1;
    }
}

/// The TCP segment of an IPv4 frame: (seq, ack, flags, payload range).
pub(super) fn segment(f: &[u8], l3: usize) -> Option<(u32, u32, u8, std::ops::Range<usize>)> {
    let ip = f.get(l3..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let t = l3 + ihl;
    let tcp = f.get(t..t + 20)?;
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let doff = usize::from(tcp[12] >> 4) * 4;
    let start = t + doff;
    let end = (l3 + total).min(f.len());
    (start <= end && doff >= 20).then_some((seq, ack, tcp[13], start..end))
}

const SYN: u8 = 0x02;
/// Retransmissions of held bytes (and nothing new) that cut a flow's
/// connection: a head split over more segments than the client's window,
/// which waits for an acknowledgement nobody sends (the first may be loss).
const STALLS_BEFORE_CUT: u8 = 2;
const RST: u8 = 0x04;

fn inspect(cx: &mut Ctx, v: &mut Vector, i: usize) -> Next {
    let m = v.meta[i];
    let slot = m.l7;
    if matches!(
        cx.st.l7.get_mut(slot, m.flow).map(|l| l.parser),
        Some(Parser::DnsUdp)
    ) {
        return dns_udp(cx, v, i);
    }
    let frame = v.frame(i);
    let Some((seq, _ack, flags, payload)) = segment(frame, usize::from(m.pkt.l3)) else {
        return Next::Drop(DropReason::L7Refused);
    };
    let Some(l) = cx.st.l7.get_mut(slot, m.flow) else {
        // The flow's inspection state is gone (reclaimed): fail closed.
        return Next::Drop(DropReason::L7Unavailable);
    };
    if l.denied {
        return Next::Drop(DropReason::L7Refused);
    }
    if flags & RST != 0 {
        // The client gave up: whatever was held will never be wanted.
        cx.st.l7.release(slot, |_, b| cx.pool.put(b));
        return Next::Switch;
    }
    if flags & SYN != 0 {
        if l.synced {
            // A SYN mid-stream would move where warden thinks the stream
            // is, away from where the server is: bytes the server takes
            // would then look old and pass uninspected. Never re-synced.
            return Next::Drop(DropReason::L7OutOfOrder);
        }
        l.synced = true;
        l.forwarded = seq.wrapping_add(1);
        l.fed = l.forwarded;
        return Next::Switch;
    }
    if !l.synced {
        // Picked up mid-stream (no handshake seen): the parser cannot know
        // where a request starts.
        return cut(cx, v, i, LastL7::Refused("no_handshake"));
    }
    let len = payload.len() as u32;
    if len == 0 {
        return Next::Switch;
    }
    let end = seq.wrapping_add(len);
    // Where the segment stands: bytes the server has pass; bytes held are
    // not sent twice; a gap waits for the client to fill it.
    if seq_le(end, l.forwarded) {
        return Next::Switch;
    }
    if !seq_le(seq, l.fed) {
        return Next::Drop(DropReason::L7OutOfOrder);
    }
    if seq_le(end, l.fed) {
        // Only bytes already held: the client retransmits because nothing
        // was acknowledged. Once may be a lost segment; past
        // that, its window is spent and it will not send the rest of the
        // head: fail closed, and say so, rather than hang.
        l.stalls += 1;
        if l.stalls < STALLS_BEFORE_CUT {
            return Next::Drop(DropReason::L7OutOfOrder);
        }
        return cut(cx, v, i, LastL7::Refused("head_stalled"));
    }
    // New bytes start here (a retransmission may repeat held ones first:
    // the server drops what it already has).
    let skip = l.fed.wrapping_sub(seq) as usize;
    let payload = payload.start + skip..payload.end;
    let t = cx.t;
    let c = cx.c;
    let q = super::classify::flow_query(cx.st, t, m.flow);
    // Requests learn mode wants recorded, and the flow log's record of
    // each request decided, kept until the borrows end.
    let mut learned = [LearnL7::None; LEARN_PER_SEGMENT];
    let mut n_learned = 0;
    let logging = cx.st.flow_log.is_some();
    let mut logged = [(LearnL7::None, LastL7::None); LEARN_PER_SEGMENT];
    let mut n_logged = 0;
    let mut decide = |first, req: &policy::L7Request<'_>| {
        let (v, learn) = super::classify::decide_request(t, c, q.as_ref(), first, req);
        if learn && n_learned < LEARN_PER_SEGMENT {
            learned[n_learned] = super::classify::learn_l7(req);
            n_learned += 1;
        }
        if logging && n_logged < LEARN_PER_SEGMENT {
            logged[n_logged] = (super::classify::learn_l7(req), v.as_last());
            n_logged += 1;
        }
        v
    };
    let bytes = &frame[payload.clone()];
    let l3 = usize::from(m.pkt.l3);
    // The protocol first, when the rules ask for it.
    let mut refeed = false;
    if let Some(l) = cx.st.l7.get_mut(slot, m.flow) {
        match l.parser {
            Parser::Opaque => {
                l.fed = end;
                l.forwarded = end;
                return Next::Switch;
            }
            Parser::Detect(mut d, ins) => match d.feed_client(bytes) {
                l7::detect::Detection::NeedMore => {
                    l.parser = Parser::Detect(d, ins);
                    l.fed = end;
                    return hold(cx, v, i, seq);
                }
                l7::detect::Detection::Known(p) => {
                    let app = p;
                    let parser = match p {
                        l7::detect::Proto::Http => Some(Parser::Http(l7::http::HttpStream::new())),
                        l7::detect::Proto::Tls => Some(Parser::Tls(l7::tls::HelloStream::new())),
                        l7::detect::Proto::Dns => Some(Parser::DnsTcp(l7::dns::TcpFramer::new())),
                        _ => None,
                    };
                    if let Some(parser) = parser.filter(|_| ins.parses(app)) {
                        l.parser = parser;
                        refeed = true;
                    } else {
                        l.requests += 1;
                        let first = l.first_rule;
                        if !judge(
                            decide(first, &policy::L7Request::Detected(app)),
                            &mut l.last,
                        ) {
                            let last = l.last;
                            return cut(cx, v, i, last);
                        }
                        l.parser = Parser::Opaque;
                        l.fed = end;
                        release(cx, v, i, seq);
                        if let Some(l) = cx.st.l7.get_mut(slot, m.flow) {
                            l.forwarded = end;
                        }
                        return Next::Switch;
                    }
                }
            },
            Parser::Http(_) | Parser::Tls(_) | Parser::DnsTcp(_) | Parser::DnsUdp => {}
        }
    }
    // Feed the new bytes (after a detection, the held ones first); decide
    // each request as it completes.
    let head = match cx.st.l7.head_for(slot) {
        Ok(head) => head,
        Err(Short::Exhausted) => return cut(cx, v, i, LastL7::Refused("head_buffers_exhausted")),
        Err(Short::OriginShare) => {
            cx.c.policy.l7_share_limited.inc();
            return cut(cx, v, i, LastL7::Refused("origin_share"));
        }
    };
    let verdict;
    let buffered;
    {
        let Some((l, lent)) = cx.st.l7.parts(slot, head) else {
            return Next::Drop(DropReason::L7Unavailable);
        };
        let crate::l7flows::L7Flow {
            parser,
            held,
            held_n,
            requests,
            last,
            first_rule,
            ..
        } = l;
        let first = *first_rule;
        let mut decide = |req: &policy::L7Request<'_>| decide(first, req);
        let earlier = held
            .iter()
            .take(if refeed { *held_n } else { 0 })
            .filter_map(|h| h.as_ref())
            .filter_map(|(_, b)| {
                let f = b.frame();
                segment(f, l3).and_then(|(.., r)| f.get(r))
            });
        let mut out = (Feed::Pass, 0);
        match (parser, lent) {
            (Parser::Http(stream), Lent::Http(hb)) => {
                for part in earlier.chain(std::iter::once(bytes)) {
                    out = feed_http(stream, hb, part, requests, last, &mut decide);
                    if matches!(out.0, Feed::Cut) {
                        break;
                    }
                }
            }
            (Parser::Tls(stream), Lent::Tls(hb)) => {
                for part in earlier.chain(std::iter::once(bytes)) {
                    out = feed_tls(stream, hb, part, requests, last, &mut decide);
                    if matches!(out.0, Feed::Cut) {
                        break;
                    }
                }
            }
            (Parser::DnsTcp(framer), Lent::Dns(buf)) => {
                for part in earlier.chain(std::iter::once(bytes)) {
                    out = feed_dns_tcp(framer, buf, part, requests, last, &mut decide);
                    if matches!(out.0, Feed::Cut) {
                        break;
                    }
                }
            }
            _ => out = (Feed::Cut, 0),
        }
        (verdict, buffered) = out;
        l.fed = end;
    }
    cx.st.l7.settle_head(slot, buffered);
    record_learned(cx, m.flow, &learned[..n_learned]);
    log_requests(cx, m.flow, &logged[..n_logged]);
    if matches!(verdict, Feed::Cut) {
        let last = cx.st.l7.get(slot).map_or(LastL7::Denied, |l| l.last);
        return cut(cx, v, i, last);
    }
    if buffered > 0 {
        // Mid-head: hold this segment until the head is decided.
        return hold(cx, v, i, seq);
    }
    // Every request so far is allowed: what was held goes first, in order.
    release(cx, v, i, seq);
    if let Some(l) = cx.st.l7.get_mut(slot, m.flow) {
        l.forwarded = end;
    }
    Next::Switch
}

/// Feed HTTP bytes; decide each request head as it completes.
fn feed_http(
    stream: &mut l7::http::HttpStream,
    hb: &mut l7::http::HeadBuf,
    bytes: &[u8],
    requests: &mut u32,
    last: &mut LastL7,
    decide: &mut impl FnMut(&policy::L7Request<'_>) -> RequestVerdict,
) -> (Feed, usize) {
    let mut at = 0;
    while at < bytes.len() {
        let (used, ev) = stream.feed(hb, &bytes[at..]);
        at += used;
        match ev {
            Event::NeedMore { buffered } => return (Feed::Pass, buffered),
            Event::Request(r) => {
                *requests += 1;
                if !judge(decide(&policy::L7Request::http(&r)), last) {
                    return (Feed::Cut, 0);
                }
            }
            Event::Body { .. } | Event::Opaque => {}
            Event::Deny(reason) => {
                *last = LastL7::Refused(reason.as_str());
                return (Feed::Cut, 0);
            }
        }
        if used == 0 {
            break;
        }
    }
    (Feed::Pass, 0)
}

/// Feed TLS bytes: the ClientHello is decided once; the rest of the
/// connection is opaque.
fn feed_tls(
    stream: &mut l7::tls::HelloStream,
    hb: &mut l7::tls::HelloBuf,
    bytes: &[u8],
    requests: &mut u32,
    last: &mut LastL7,
    decide: &mut impl FnMut(&policy::L7Request<'_>) -> RequestVerdict,
) -> (Feed, usize) {
    match stream.feed(hb, bytes).1 {
        l7::tls::Event::NeedMore { buffered } => (Feed::Pass, buffered),
        l7::tls::Event::Hello(h) => {
            *requests += 1;
            if judge(decide(&policy::L7Request::tls(&h)), last) {
                (Feed::Pass, 0)
            } else {
                (Feed::Cut, 0)
            }
        }
        l7::tls::Event::Done => (Feed::Pass, 0),
        l7::tls::Event::Deny(reason) => {
            *last = LastL7::Refused(reason.as_str());
            (Feed::Cut, 0)
        }
    }
}

/// Feed DNS-over-TCP bytes: each query is decided as it completes (a
/// denied one cuts the connection: over TCP there is no REFUSED to answer
/// in the server's name without taking its place in the stream).
fn feed_dns_tcp(
    framer: &mut l7::dns::TcpFramer,
    buf: &mut [u8],
    bytes: &[u8],
    requests: &mut u32,
    last: &mut LastL7,
    decide: &mut impl FnMut(&policy::L7Request<'_>) -> RequestVerdict,
) -> (Feed, usize) {
    let mut at = 0;
    while at < bytes.len() {
        let (used, ev) = framer.feed(buf, &bytes[at..]);
        at += used;
        match ev {
            l7::dns::Event::NeedMore { buffered } => return (Feed::Pass, buffered),
            l7::dns::Event::Message(msg) => {
                let mut name = l7::dns::NameBuf::new();
                match l7::dns::parse_query(msg, &mut name) {
                    Ok(q) => {
                        *requests += 1;
                        let req = policy::L7Request::Dns {
                            name: q.question.name,
                        };
                        if !judge(decide(&req), last) {
                            return (Feed::Cut, 0);
                        }
                    }
                    Err(reason) => {
                        *last = LastL7::Refused(reason.as_str());
                        return (Feed::Cut, 0);
                    }
                }
            }
            l7::dns::Event::Deny(reason) => {
                *last = LastL7::Refused(reason.as_str());
                return (Feed::Cut, 0);
            }
        }
        if used == 0 {
            break;
        }
    }
    (Feed::Pass, 0)
}

/// Record a request's verdict; whether it may go on.
fn judge(v: RequestVerdict, last: &mut LastL7) -> bool {
    *last = match v {
        RequestVerdict::Allow => LastL7::Allowed,
        RequestVerdict::WouldDeny => LastL7::WouldDeny,
        RequestVerdict::Deny => {
            *last = LastL7::Denied;
            return false;
        }
    };
    true
}

/// A DNS query over UDP: decided alone; refused ones are answered REFUSED
/// by warden in the server's name (clients fail fast), malformed ones
/// (pointer loops, counts that lie) dropped.
fn dns_udp(cx: &mut Ctx, v: &mut Vector, i: usize) -> Next {
    let m = v.meta[i];
    let frame = v.frame(i);
    let l3 = usize::from(m.pkt.l3);
    let Some(udp) = udp_payload(frame, l3) else {
        return Next::Drop(DropReason::L7Refused);
    };
    let t = cx.t;
    let c = cx.c;
    let q = super::classify::flow_query(cx.st, t, m.flow);
    let Some((first, q)) = cx.st.l7.get(m.l7).zip(q).map(|(l, q)| (l.first_rule, q)) else {
        return Next::Drop(DropReason::L7Unavailable);
    };
    let mut name = l7::dns::NameBuf::new();
    let verdict = match l7::dns::parse_query(udp, &mut name) {
        Ok(query) => {
            let req = policy::L7Request::Dns {
                name: query.question.name,
            };
            let (v, learn) = super::classify::decide_request(t, c, Some(&q), first, &req);
            let rec = super::classify::learn_l7(&req);
            if learn {
                record_learned(cx, m.flow, &[rec]);
            }
            log_requests(cx, m.flow, &[(rec, v.as_last())]);
            v
        }
        Err(reason) => {
            if lenient(cx, &m) {
                cx.c.policy.would_deny.inc();
                cx.c.policy.l7_would_refuse.inc();
                return Next::Switch;
            }
            if let Some(l) = cx.st.l7.get_mut(m.l7, m.flow) {
                l.last = LastL7::Refused(reason.as_str());
            }
            return Next::Drop(DropReason::L7Refused);
        }
    };
    let allowed = {
        let Some(l) = cx.st.l7.get_mut(m.l7, m.flow) else {
            return Next::Drop(DropReason::L7Unavailable);
        };
        l.requests += 1;
        judge(verdict, &mut l.last)
    };
    if allowed {
        return Next::Switch;
    }
    // REFUSED, from the server, back where the query came from.
    let dst_identity = cx
        .st
        .flows
        .get(m.flow)
        .map_or(identity::IdentityId::UNAUTHENTICATED, |e| e.dst_identity);
    if let Some(mut b) = cx.pool.get() {
        b.set_len(crate::buffer::BUF_SIZE);
        match reject::dns_refused(v.frame(i), l3, b.frame_mut()) {
            Some(n) => {
                b.set_len(n);
                let mut am = Meta {
                    l7: crate::l7flows::NO_L7,
                    ..m
                };
                am.flags |= ANSWER;
                am.flow = crate::flows::FlowRef::NONE;
                am.src_identity = dst_identity;
                am.pkt.key = m.pkt.key.reversed();
                am.pkt.tcp = None;
                am.pkt.kind = super::meta::Kind::Unknown;
                am.next = match m.from {
                    From::Port(p) => Next::Deliver(p),
                    From::Peer(r) => Next::Encap(r),
                    From::Router => Next::Done,
                };
                if let Err(b) = v.push(b, am) {
                    cx.pool.put(b);
                } else {
                    cx.c.policy.reject_answers.inc();
                }
            }
            None => cx.pool.put(b),
        }
    }
    Next::Drop(DropReason::L7Denied)
}

/// The UDP payload of an IPv4 frame (L3 at `l3`).
pub(super) fn udp_payload(frame: &[u8], l3: usize) -> Option<&[u8]> {
    let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
    frame.get(l3 + ihl + 8..)
}

/// Hold packet `i` (sequence number `seq`) until its flow's head is
/// decided; past the bounds, the connection is cut instead.
fn hold(cx: &mut Ctx, v: &mut Vector, i: usize, seq: u32) -> Next {
    let Some(buf) = v.bufs[i].take() else {
        return Next::Done;
    };
    match cx.st.l7.hold(v.meta[i].l7, seq, buf) {
        Ok(()) => {
            cx.c.policy.l7_held.inc();
            Next::Done
        }
        Err((buf, Short::Exhausted)) => {
            v.bufs[i] = Some(buf);
            cut(cx, v, i, LastL7::Refused("hold_overflow"))
        }
        Err((buf, Short::OriginShare)) => {
            v.bufs[i] = Some(buf);
            cx.c.policy.l7_share_limited.inc();
            cut(cx, v, i, LastL7::Refused("origin_share"))
        }
    }
}

/// Serial-number order of TCP sequence numbers: `a` at or before `b`.
#[inline]
fn seq_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) < 1 << 31
}

enum Feed {
    Pass,
    Cut,
}

/// The policy's answer for one request.
#[derive(Clone, Copy)]
pub(super) enum RequestVerdict {
    Allow,
    /// Not allowed, but the mode forwards it (monitor, learn).
    WouldDeny,
    Deny,
}

impl RequestVerdict {
    fn as_last(self) -> LastL7 {
        match self {
            RequestVerdict::Allow => LastL7::Allowed,
            RequestVerdict::WouldDeny => LastL7::WouldDeny,
            RequestVerdict::Deny => LastL7::Denied,
        }
    }
}

/// Send slot's held segments ahead of packet `i`: the first takes `i`'s
/// place in the vector, the rest and `i` itself follow at the end.
fn release(cx: &mut Ctx, v: &mut Vector, i: usize, current_seq: u32) {
    let m = v.meta[i];
    let mut held: [Option<(u32, Buf)>; crate::l7flows::HOLD_PER_FLOW] =
        std::array::from_fn(|_| None);
    let mut n = 0;
    cx.st.l7.release(m.l7, |seq, b| {
        held[n] = Some((seq, b));
        n += 1;
    });
    if n == 0 {
        return;
    }
    let Some(current) = v.bufs[i].take() else {
        return;
    };
    // Each keeps its own sequence number: the identity header's nonce,
    // should the stamp stage re-stamp one.
    let flags = m.pkt.tcp.map_or(0, |(f, _)| f);
    let meta_for = |seq: u32| {
        let mut out = Meta {
            next: Next::Switch,
            ..m
        };
        out.pkt.tcp = Some((flags, seq));
        out
    };
    let mut rest = held.iter_mut().take(n).filter_map(Option::take);
    if let Some((seq, first)) = rest.next() {
        v.bufs[i] = Some(first);
        v.meta[i] = meta_for(seq);
    }
    for (seq, b) in rest.chain(std::iter::once((current_seq, current))) {
        if let Err(b) = v.push(b, meta_for(seq)) {
            cx.pool.put(b);
            cx.c.count_drop(DropReason::FloodOverflow);
        }
    }
}

/// Cut the connection: drop what was held and packet `i`, reset both ends.
fn cut(cx: &mut Ctx, v: &mut Vector, i: usize, why: LastL7) -> Next {
    let m = v.meta[i];
    // A refusal (not a policy deny) on a flow whose rule's set does not
    // bite (monitor, learn): the flow goes on, no longer inspected, and is
    // counted as one the policy would have cut.
    if let LastL7::Refused(_) = why {
        if lenient(cx, &m) {
            return pass_on(cx, v, i);
        }
    }
    cx.st.l7.release(m.l7, |_, b| cx.pool.put(b));
    let mut server_seq = None;
    let mut client_seq = None;
    if let Some(l) = cx.st.l7.get_mut(m.l7, m.flow) {
        l.denied = true;
        l.last = why;
        server_seq = l.synced.then_some(l.forwarded);
        client_seq = l.server_next;
    }
    cx.c.policy.l7_cut.inc();
    // The client accepts a RST only at exactly the next byte it expects
    // (RFC 5961): the segment's ACK, or, when the server's answer to an
    // earlier request reached it meanwhile, the server's next byte. Both
    // are sent when they differ; the other is ignored.
    let seg_ack = segment(v.frame(i), usize::from(m.pkt.l3)).map(|(_, ack, ..)| ack);
    let targets = [
        server_seq.map(|seq| Toward::Server { seq }),
        Some(Toward::Client { seq: None }),
        client_seq
            .filter(|s| Some(*s) != seg_ack)
            .map(|s| Toward::Client { seq: Some(s) }),
    ];
    push_resets(cx, v, i, &targets);
    Next::Drop(match why {
        LastL7::Denied => DropReason::L7Denied,
        _ => DropReason::L7Refused,
    })
}

/// Push a RST built from TCP packet `i` toward each of `targets`: toward
/// the server onward along the flow's own path (switched, stamped as its
/// packets are), toward the client back where `i` came from, speaking for
/// the flow's destination identity. Returns how many were pushed.
pub(super) fn push_resets(
    cx: &mut Ctx,
    v: &mut Vector,
    i: usize,
    targets: &[Option<Toward>],
) -> usize {
    let m = v.meta[i];
    let l3 = usize::from(m.pkt.l3);
    let mut answers = [None, None, None];
    for (slot, to) in answers.iter_mut().zip(targets.iter().flatten()) {
        let Some(mut b) = cx.pool.get() else { break };
        b.set_len(crate::buffer::BUF_SIZE);
        match reject::reset(v.frame(i), l3, *to, b.frame_mut()) {
            Some(n) => {
                b.set_len(n);
                *slot = Some((*to, b));
            }
            None => cx.pool.put(b),
        }
    }
    // The client-bound RST speaks for the server's identity.
    let dst_identity = cx
        .st
        .flows
        .get(m.flow)
        .map_or(identity::IdentityId::UNAUTHENTICATED, |e| e.dst_identity);
    let mut pushed = 0;
    for (to, b) in answers.into_iter().flatten() {
        let mut am = Meta {
            l7: crate::l7flows::NO_L7,
            ..m
        };
        match to {
            // Onward to the server, as the flow's own packets go.
            Toward::Server { seq } => {
                am.pkt.tcp = Some((RST, seq));
                am.next = Next::Switch;
            }
            // Back where the client's packets came from.
            Toward::Client { .. } => {
                am.flags |= ANSWER;
                am.flow = crate::flows::FlowRef::NONE;
                am.src_identity = dst_identity;
                am.pkt.key = m.pkt.key.reversed();
                am.pkt.tcp = reject_seq(b.frame(), l3).map(|s| (RST, s));
                am.pkt.kind = super::meta::Kind::Unknown;
                am.next = match m.from {
                    From::Port(p) => Next::Deliver(p),
                    From::Peer(r) => Next::Encap(r),
                    From::Router => Next::Done,
                };
            }
        }
        match v.push(b, am) {
            Ok(_) => pushed += 1,
            Err(b) => cx.pool.put(b),
        }
    }
    pushed
}

/// Requests one segment may record for learn mode (more are rare: they
/// would be pipelined in one segment; the rest go unrecorded).
const LEARN_PER_SEGMENT: usize = 8;

/// Hand the requests decided on flow `flow` to the flow log.
fn log_requests(cx: &mut Ctx, flow: crate::flows::FlowRef, reqs: &[(LearnL7, LastL7)]) {
    if reqs.is_empty() || cx.st.flow_log.is_none() {
        return;
    }
    let Some(e) = cx.st.flows.get(flow).copied() else {
        return;
    };
    let now = cx.st.now_s;
    if let Some(log) = &mut cx.st.flow_log {
        for &(request, l7_verdict) in reqs {
            log.emit(crate::flowlog::FlowEvent {
                kind: crate::flowlog::EventKind::L7,
                entry: e,
                request,
                l7_verdict,
                reason: (l7_verdict == LastL7::Denied).then_some(DropReason::L7Denied),
                now,
            });
        }
    }
}

/// Record requests of flow `flow` in the learn table.
fn record_learned(cx: &mut Ctx, flow: crate::flows::FlowRef, reqs: &[LearnL7]) {
    let Some(e) = cx.st.flows.get(flow).copied() else {
        return;
    };
    for l7 in reqs {
        super::classify::record_learn(cx, e.src_identity, Some(e.dst_identity), &e.key, *l7);
    }
}

/// Whether the rule that decided packet `i`'s flow is in a set whose mode
/// does not bite.
fn lenient(cx: &Ctx, m: &Meta) -> bool {
    let (Some(id), Some(l)) = (&cx.t.identity, cx.st.l7.get(m.l7)) else {
        return false;
    };
    id.policy.compiled.mode_of(l.first_rule) != policy::Mode::Enforce
}

/// Let an inspected flow go on uninspected: what was held, then packet `i`.
fn pass_on(cx: &mut Ctx, v: &mut Vector, i: usize) -> Next {
    let m = v.meta[i];
    cx.c.policy.would_deny.inc();
    cx.c.policy.l7_would_refuse.inc();
    let seq = segment(v.frame(i), usize::from(m.pkt.l3)).map_or(0, |(seq, ..)| seq);
    let mut end = None;
    if let Some(l) = cx.st.l7.get_mut(m.l7, m.flow) {
        l.parser = Parser::Opaque;
        l.last = LastL7::WouldDeny;
        end = Some(l.fed);
    }
    cx.st.l7.settle_head(m.l7, 0);
    release(cx, v, i, seq);
    if let (Some(end), Some(l)) = (end, cx.st.l7.get_mut(m.l7, m.flow)) {
        l.forwarded = end;
    }
    Next::Switch
}

/// The sequence number of the RST just built (the identity header's nonce
/// when it is stamped toward a warden).
fn reject_seq(f: &[u8], l3: usize) -> Option<u32> {
    segment(f, l3).map(|(seq, ..)| seq)
}
