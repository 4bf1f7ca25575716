//! The VTEP pipeline of one worker, as burst-wide stages (VPP's node
//! model): each stage takes the whole packet vector of a received burst and
//! writes, per packet, its next stage or a drop reason. No stage calls back
//! into an earlier one; the router answers "switch again in VNI x" and the
//! driver runs the switch stage a second time. The packet path reads from
//! the file names:
//!
//! ```text
//! rx_underlay  underlay frames: VXLAN for us -> decap; ARP, other IP -> host stack
//! decap        outer headers off; peer and VNI by hash lookup
//! rx_access    frames from local access ports
//! classify     parse once; port security and ARP checks; the flow table
//!              (origin-bound entries); identity (verify + strip); the policy
//! inspect      L7: each request of a flow whose rule has an L7 clause is
//!              decided before it reaches the server (held, released, or reset)
//! revoke       TCP segments of flows a reloaded policy took back: both ends reset
//! switch       FDB learn and lookup, flooding; records where each flow went
//! route        the L3 gateway between VNIs (then switch again)
//! stamp        identity header on flows of local workloads toward wardens
//! encap        outer headers on from the peer's template
//! output       policy for local delivery, transmit bursts, drops counted
//! ```
//!
//! Config tables ([`Tables`]) are one immutable value behind an `Arc`;
//! learned state ([`State`]: FDB, neighbors, flows, epoch keys) belongs to
//! the worker. Counters are this worker's block. Nothing here assumes one
//! worker, except that the worker that owns the underlay port owns the
//! underlay host stack.

mod classify;
mod csum;
mod decap;
mod encap;
mod express;
mod fwd_cache;
mod ingress_identity;
mod inspect;
mod meta;
mod output;
mod parse;
mod reject;
mod reload;
mod revoke;
mod route;
mod rx_access;
mod rx_underlay;
mod stamp;
mod switch;
mod tables;
mod trace;

#[cfg(test)]
mod ident_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use config::WardenConfig;
use identity::keys::StaticKeys;
use overlay::{MacAddr, OuterTemplate};

use crate::buffer::{Buf, Burst, Pool};
use crate::counters::{Counters, DropReason, WorkerCounters};
use crate::fdb::Fdb;
use crate::flows::{FlowEntry, FlowTable, RawFlowRow, AGING_SLICE, FLOW_CAPACITY};
use crate::port::Port;
use crate::underlay::HostStack;

pub use meta::{From, VECTOR_CAP};
pub use reload::ReloadReport;
/// The next-step type, for tools that print a stage's decision.
pub mod meta_next {
    pub use super::meta::Next;
}
pub use route::Router;
pub use tables::{Binding, PeerIdent, PeerRt, Tables, TablesError, VniRt};
pub use trace::{FlowSpec, LiveFilter, LiveRecord, LiveTap, Note, Step, TraceInput, TraceReport};

/// Why an engine could not be built.
pub type IdentityError = TablesError;

/// Packet buffers per worker: enough for every port's burst in flight, the
/// staged transmit bursts and flood copies.
pub const POOL_SIZE: usize = 4096;
/// Most copies one flooded frame is replicated to.
pub const MAX_FLOOD: usize = 256;
/// FDB entries per worker.
pub const FDB_CAPACITY: usize = 65536;
/// `reject` answers (TCP RST, ICMP unreachable) a worker sends per second:
/// a flood of refused SYNs is not answered one for one (the excess is
/// dropped silently, still counted as `policy_rejected`).
pub const REJECT_ANSWERS_PER_SEC: u32 = 1000;
/// Inspection slots checked per housekeeping round for flows that left.
const L7_SWEEP: usize = 512;
/// Recent denials kept for `warden flows` (a ring: a flood overwrites it).
pub const DENIALS: usize = 256;

/// Learned state of one worker: everything packets teach it.
#[derive(Debug)]
pub struct State {
    pub fdb: Fdb,
    pub router: Router,
    pub flows: FlowTable,
    /// Keys of the current epochs (identity on).
    pub keys: Option<StaticKeys>,
    /// Next-hop MAC and outer template of each peer (from the host stack).
    pub next_hops: Vec<Option<MacAddr>>,
    pub templates: Vec<Option<OuterTemplate>>,
    pub underlay_mac: MacAddr,
    /// VXLAN to this VTEP in its common shape, checked in a few word
    /// compares (decap's answer for such frames; the underlay never
    /// changes in a running engine).
    pub decap_shape: overlay::DecapShape,
    /// Engine clock in seconds.
    pub now_s: u32,
    /// Unix seconds (identity timestamps), set by housekeeping.
    pub unix_now: u64,
    /// Flows denied at their first packet, most recent last (never in the table).
    pub denials: Vec<FlowEntry>,
    /// What `learn` mode recorded.
    pub learn: crate::learn::LearnTable,
    /// `reject` answers left this second.
    pub reject_tokens: u32,
    /// Inspected flows: parser state and held segments.
    pub l7: crate::l7flows::L7Table,
    /// Addresses DNS answers made reachable (FQDN selectors).
    pub fqdn: crate::fqdn::FqdnTable,
    /// Where flow events go (`[flow_log]`), when configured.
    pub flow_log: Option<crate::flowlog::FlowLogTx>,
    /// A running capture (`warden capture`).
    pub capture: Option<crate::capture::Tap>,
    /// A running live trace (`warden trace --live`).
    pub live: Option<trace::LiveTap>,
    /// Liveness of each peer as last looked at (once a second); traffic
    /// to a `Down` peer is dropped as `peer_down` by encap.
    pub peer_state: Vec<crate::underlay::Liveness>,
    /// Each peer's VXLAN rx count at the last look: more is a sign of life.
    peer_rx_seen: Vec<u64>,
    denial_next: usize,
    /// Bumped when the config tables are swapped: invalidates the
    /// forwarding decisions cached on flows (`fwd_cache`).
    pub fwd_epoch: u32,
    /// Whether the switch caches decisions on flows (always, but for the
    /// tests that compare an engine with and without: checked only where
    /// the cache is filled).
    pub fwd_cache: bool,
    /// Whether underlay bursts start with the express lane (always, but
    /// for the tests that compare an engine with and without).
    pub express: bool,
}

impl State {
    /// Hand a flow event to the flow log, if there is one (bounded: see
    /// `flowlog`).
    #[inline]
    pub fn log_flow(
        &mut self,
        kind: crate::flowlog::EventKind,
        entry: &FlowEntry,
        reason: Option<DropReason>,
    ) {
        if self.flow_log.is_some() {
            self.emit_flow(kind, entry, reason);
        }
    }

    /// The body of [`State::log_flow`], out of line: with the flow log off,
    /// the packet path carries one branch, not the event and the channel.
    #[inline(never)]
    fn emit_flow(
        &mut self,
        kind: crate::flowlog::EventKind,
        entry: &FlowEntry,
        reason: Option<DropReason>,
    ) {
        if let Some(log) = &mut self.flow_log {
            log.emit(crate::flowlog::FlowEvent {
                kind,
                entry: *entry,
                request: crate::learn::LearnL7::None,
                l7_verdict: crate::l7flows::LastL7::None,
                reason,
                now: self.now_s,
            });
        }
    }

    /// Traffic to peer `r` is dropped: it is down.
    #[inline]
    pub fn peer_down(&self, r: u16) -> bool {
        self.peer_state.get(usize::from(r)) == Some(&crate::underlay::Liveness::Down)
    }

    /// Record a flow denied at its first packet, overwriting the oldest.
    pub fn record_denial(&mut self, e: FlowEntry) {
        let reason = match e.verdict {
            crate::flows::Verdict::Reject => DropReason::PolicyRejected,
            _ => DropReason::PolicyDenied,
        };
        self.log_flow(crate::flowlog::EventKind::Denied, &e, Some(reason));
        if self.denials.len() < DENIALS {
            self.denials.push(e);
        } else {
            self.denials[self.denial_next] = e;
            self.denial_next = (self.denial_next + 1) % DENIALS;
        }
    }
}

/// What the stages see: the config tables, the learned state, the buffer
/// pool and this worker's counters.
pub(crate) struct Ctx<'a> {
    pub t: &'a Tables,
    pub st: &'a mut State,
    pub pool: &'a mut Pool,
    pub c: &'a WorkerCounters,
}

/// One worker's pipeline and everything it owns.
pub struct Engine {
    ports: Vec<Box<dyn Port>>,
    tables: Arc<Tables>,
    st: State,
    host: HostStack,
    pool: Pool,
    vec: meta::Vector,
    rx: Burst,
    tx: Vec<Burst>,
    counters: Arc<Counters>,
    worker: usize,
    start: Instant,
    last_housekeeping: Instant,
    last_second: u32,
    /// The host stack has frames to process.
    host_due: bool,
    /// Scratch list for parked packets that expired (kept to not allocate).
    expired: Vec<Buf>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("ports", &self.ports.len())
            .field("vnis", &self.tables.vnis.len())
            .field("peers", &self.tables.peers.len())
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Build worker 0's pipeline for `cfg` over already opened `ports` (in
    /// the config's port order).
    pub fn new(
        cfg: &WardenConfig,
        ports: Vec<Box<dyn Port>>,
        counters: Arc<Counters>,
    ) -> Result<Engine, TablesError> {
        let tables = Arc::new(Tables::build(cfg)?);
        Engine::with_tables(tables, ports, counters, 0)
    }

    /// Build worker `worker`'s pipeline over shared config tables.
    pub fn with_tables(
        tables: Arc<Tables>,
        ports: Vec<Box<dyn Port>>,
        counters: Arc<Counters>,
        worker: usize,
    ) -> Result<Engine, TablesError> {
        let t = &*tables;
        let mut fdb = Fdb::new(
            FDB_CAPACITY,
            t.vnis.iter().map(|v| v.mac_aging_secs).collect(),
        );
        for (v, mac, loc) in &t.fdb_static {
            fdb.insert_static(*v, *mac, *loc);
        }
        if let Some(id) = &t.identity {
            // A bound workload's MAC lives at its port: never learned elsewhere.
            for b in &id.bindings {
                fdb.insert_static(b.vni, b.mac, crate::fdb::Location::Port(b.port));
            }
        }
        let underlay_mac = ports[usize::from(t.underlay_port)].mac();
        let host = HostStack::new(
            underlay_mac,
            t.underlay_cidr,
            t.underlay_gateway,
            t.underlay_mtu,
            &t.peers.iter().map(|p| p.address).collect::<Vec<_>>(),
        );
        let now = Instant::now();
        let unix_now = unix_now();
        let keys = match &t.identity {
            Some(id) => {
                let mut k = StaticKeys::new(id.me, id.clock, id.secrets.clone())
                    .map_err(TablesError::Keys)?;
                k.rotate(unix_now);
                Some(k)
            }
            None => None,
        };
        let n_ports = ports.len();
        let st = State {
            fdb,
            router: Router::new(t),
            flows: FlowTable::new(
                FLOW_CAPACITY,
                t.peers.len(),
                n_ports,
                FlowTable::default_quota(FLOW_CAPACITY),
            ),
            keys,
            next_hops: vec![None; t.peers.len()],
            templates: vec![None; t.peers.len()],
            underlay_mac,
            decap_shape: overlay::DecapShape::new(underlay_mac, t.underlay_ip, t.udp_port),
            now_s: 0,
            unix_now,
            denials: Vec::with_capacity(DENIALS),
            denial_next: 0,
            fwd_epoch: 0,
            fwd_cache: true,
            express: true,
            learn: crate::learn::LearnTable::new(),
            reject_tokens: REJECT_ANSWERS_PER_SEC,
            l7: crate::l7flows::L7Table::new(t.peers.len() + n_ports),
            fqdn: crate::fqdn::FqdnTable::new(),
            flow_log: None,
            capture: None,
            live: None,
            peer_state: vec![crate::underlay::Liveness::Unknown; t.peers.len()],
            peer_rx_seen: vec![0; t.peers.len()],
        };
        counters.workers[worker]
            .flow_table
            .capacity
            .set(FLOW_CAPACITY as u64);
        Ok(Engine {
            host,
            ports,
            tables,
            st,
            pool: Pool::new(POOL_SIZE),
            vec: meta::Vector::new(),
            rx: Burst::new(),
            tx: (0..n_ports).map(|_| Burst::new()).collect(),
            counters,
            worker,
            start: now,
            last_housekeeping: now,
            last_second: 0,
            host_due: true,
            expired: Vec::with_capacity(16),
        })
    }

    /// Start (Some) or stop (None) a capture; how many frames the one it
    /// replaces missed.
    pub fn set_capture(&mut self, tap: Option<crate::capture::Tap>) -> u64 {
        std::mem::replace(&mut self.st.capture, tap).map_or(0, |t| t.missed)
    }

    /// Send this worker's flow events to `tx`, at most `rate` a second.
    pub fn set_flow_log(
        &mut self,
        tx: crossbeam_channel::Sender<crate::flowlog::FlowEvent>,
        rate: u32,
    ) {
        self.st.flow_log = Some(crate::flowlog::FlowLogTx::new(tx, rate));
    }

    /// Forget every flow (an operator's flush, and benches of new flows).
    pub fn clear_flows(&mut self) {
        self.st.flows.clear();
    }

    /// The flow table.
    pub fn flows(&self) -> &FlowTable {
        &self.st.flows
    }

    /// This worker's counters.
    pub fn counters(&self) -> &WorkerCounters {
        &self.counters.workers[self.worker]
    }

    /// Every worker's counters.
    pub fn all_counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    pub fn vnis(&self) -> &[VniRt] {
        &self.tables.vnis
    }

    pub fn peers(&self) -> &[PeerRt] {
        &self.tables.peers
    }

    /// Next-hop MAC of peer `r` as the host stack resolved it.
    pub fn peer_next_hop(&self, r: usize) -> Option<MacAddr> {
        self.st.next_hops.get(r).copied().flatten()
    }

    pub fn host(&self) -> &HostStack {
        &self.host
    }

    pub fn fdb(&self) -> &Fdb {
        &self.st.fdb
    }

    pub fn now_s(&self) -> u32 {
        self.st.now_s
    }

    pub fn port_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.ports.iter().filter_map(|p| p.fd()).collect()
    }

    /// Poll every port once; returns how many packets were received.
    pub fn poll(&mut self) -> usize {
        let mut moved = 0;
        for p in 0..self.ports.len() {
            moved += self.poll_port(p as u16);
        }
        moved
    }

    fn poll_port(&mut self, p: u16) -> usize {
        let pi = usize::from(p);
        let c = &self.counters.workers[self.worker];
        let n = match self.ports[pi].rx_burst(&mut self.pool, &mut self.rx) {
            Ok(n) => n,
            Err(_) => {
                // The port stays configured; a later poll may succeed.
                c.ports[pi].rx_errors.inc();
                0
            }
        };
        if n == 0 {
            return 0;
        }
        c.ports[pi].rx_packets.add(n as u64);
        let (next, vni) = if p == self.tables.underlay_port {
            (meta::Next::Underlay, 0)
        } else {
            match self.tables.port_vni[pi] {
                Some(v) => (meta::Next::Access, v),
                None => (meta::Next::Done, 0),
            }
        };
        // A capture is one branch per burst when off.
        if self.st.capture.is_some() {
            capture_rx(&mut self.st.capture, &self.rx, p);
        }
        let meta = meta::Meta::new(next, From::Port(p), vni);
        let bytes = self.vec.push_burst(&mut self.rx, meta, &mut self.pool);
        c.ports[pi].rx_bytes.add(bytes);
        self.run_vector(p == self.tables.underlay_port);
        self.flush();
        n
    }

    /// Run every stage over the vector, in path order (stages with nothing
    /// to do for this burst are skipped), then send.
    fn run_vector(&mut self, underlay: bool) {
        let Engine {
            ports,
            tables,
            st,
            host,
            pool,
            vec,
            tx,
            counters,
            worker,
            host_due,
            ..
        } = self;
        let mut cx = Ctx {
            t: tables,
            st,
            pool,
            c: &counters.workers[*worker],
        };
        // A live trace notes each stage's mark on each packet; off, that is
        // one predictable branch per stage per burst.
        let tracing = cx.st.live.is_some();
        let note = |cx: &mut Ctx, vec: &meta::Vector, stage| {
            if tracing {
                if let Some(t) = cx.st.live.as_mut() {
                    t.note(stage, vec);
                }
            }
        };
        if tracing {
            if let Some(t) = cx.st.live.as_mut() {
                t.begin();
            }
            note(&mut cx, vec, "rx");
        }
        // The leading packets of established flows whose whole decision is
        // cached take the express lane (not while a trace notes stages).
        let express = if underlay && cx.st.express && !tracing {
            express::run(&mut cx, vec)
        } else {
            0
        };
        let needs = if express < vec.len() {
            // A burst comes from one port: the underlay's, or an access port's.
            if underlay {
                if rx_underlay::run(&mut cx, vec, host) {
                    *host_due = true;
                }
                note(&mut cx, vec, "rx_underlay");
                decap::run(&mut cx, vec);
                note(&mut cx, vec, "decap");
            } else {
                rx_access::run(&mut cx, vec);
                note(&mut cx, vec, "rx_access");
            }
            // Bursts with no inspected (or revoked) flow skip those stages.
            let needs = classify::run(&mut cx, vec);
            note(&mut cx, vec, "classify");
            needs
        } else {
            classify::Needs::default()
        };
        if needs.inspect {
            inspect::run(&mut cx, vec);
            note(&mut cx, vec, "inspect");
        }
        if needs.revoke {
            revoke::run(&mut cx, vec);
            note(&mut cx, vec, "revoke");
        }
        let before = vec.len();
        // A burst whose packets all took their flow's cached decision in
        // classify has nothing for the switch.
        let to_route = needs.switch && switch::run(&mut cx, vec);
        note(&mut cx, vec, "switch");
        if to_route || vec.len() > before {
            route::run(&mut cx, vec);
            note(&mut cx, vec, "route");
            // Routed packets and what the gateway made are switched in their VNI.
            switch::run(&mut cx, vec);
            note(&mut cx, vec, "switch");
        }
        stamp::run(&mut cx, vec);
        note(&mut cx, vec, "stamp");
        encap::run(&mut cx, vec);
        note(&mut cx, vec, "encap");
        // The output stage is compiled with and without a capture's copies
        // (one branch per burst picks): off, it is the stage an engine
        // without captures would have.
        if cx.st.capture.is_some() {
            output::run::<true>(&mut cx, vec, ports, tx);
        } else {
            output::run::<false>(&mut cx, vec, ports, tx);
        }
        if tracing {
            let more = cx.st.live.as_mut().is_some_and(|t| t.end(vec));
            if !more {
                cx.st.live = None;
            }
        }
        vec.clear();
    }

    /// Start (Some) or stop (None) a live trace.
    pub fn set_live_trace(&mut self, tap: Option<trace::LiveTap>) {
        self.st.live = tap;
    }

    /// Send every staged transmit burst.
    pub fn flush(&mut self) {
        let c = &self.counters.workers[self.worker];
        for p in 0..self.tx.len() {
            if !self.tx[p].is_empty() {
                output::flush_port(&mut self.ports, &mut self.tx, &mut self.pool, c, p);
            }
        }
    }

    /// Periodic work, cheap when nothing is due: the engine clock, the host
    /// stack (ARP, echo, peer probes), FDB, neighbor and flow aging.
    pub fn housekeeping(&mut self) {
        let now = Instant::now();
        if !self.host_due && now.duration_since(self.last_housekeeping).as_millis() < 5 {
            return;
        }
        self.last_housekeeping = now;
        self.st.now_s = now.duration_since(self.start).as_secs() as u32;
        if self.host_due || self.host.wants_poll(now) {
            self.host_due = false;
            self.host.poll(now);
            self.refresh_peer_templates();
        }
        let c = &self.counters.workers[self.worker];
        let underlay = usize::from(self.tables.underlay_port);
        let (pool, tx) = (&mut self.pool, &mut self.tx[underlay]);
        self.host.drain_tx(|frame| match pool.get() {
            Some(mut b) => {
                if b.copy_from(frame) {
                    if let Err(b) = tx.push(b) {
                        pool.put(b);
                        c.count_drop(DropReason::TxFull);
                    }
                } else {
                    pool.put(b);
                }
            }
            None => c.count_drop(DropReason::PoolEmpty),
        });
        // Aging is incremental: a bounded slice of the flow table per call.
        {
            let (flows, log, now_s) = (&mut self.st.flows, &mut self.st.flow_log, self.st.now_s);
            flows.expire_slice_with(now_s, AGING_SLICE, |e| {
                if let (Some(log), false) =
                    (log.as_mut(), e.verdict == crate::flows::Verdict::Reply)
                {
                    log.emit(crate::flowlog::FlowEvent {
                        kind: crate::flowlog::EventKind::Closed,
                        entry: *e,
                        request: crate::learn::LearnL7::None,
                        l7_verdict: crate::l7flows::LastL7::None,
                        reason: None,
                        now: now_s,
                    });
                }
            });
        }
        if self.st.now_s != self.last_second {
            self.last_second = self.st.now_s;
            let now_s = self.st.now_s;
            self.st.fdb.expire(now_s);
            self.st.router.tick(now_s, &mut self.expired);
            self.st.reject_tokens = REJECT_ANSWERS_PER_SEC;
            if let Some(log) = &mut self.st.flow_log {
                log.refill();
                log.publish(&self.counters.workers[self.worker]);
            }
            self.st.fqdn.expire(now_s);
            // Inspection slots of flows that left the flow table.
            let flows = &self.st.flows;
            self.st
                .l7
                .sweep(L7_SWEEP, &mut self.pool, &|f| flows.get(f).is_some());
            for buf in self.expired.drain(..) {
                c.count_drop(DropReason::NeighborUnresolved);
                self.pool.put(buf);
            }
            self.st.unix_now = unix_now();
            if let Some(k) = self.st.keys.as_mut() {
                k.rotate(self.st.unix_now);
            }
            self.peer_liveness(now);
            self.publish(now);
        }
        self.flush();
    }

    /// Once a second: is each peer alive (a probe answered or VXLAN
    /// received within `PEER_DOWN_AFTER`)? Changes are logged.
    fn peer_liveness(&mut self, now: Instant) {
        let c = &self.counters.workers[self.worker];
        for i in 0..self.st.peer_state.len() {
            let rx = c.peers.get(i).map_or(0, |p| p.rx_packets.get());
            if rx != self.st.peer_rx_seen[i] {
                self.st.peer_rx_seen[i] = rx;
                self.host.heard_from(i, now);
            }
            let Some(l) = self.host.peers().get(i).map(|p| p.liveness(now)) else {
                continue;
            };
            let was = self.st.peer_state[i];
            if l != was {
                self.st.peer_state[i] = l;
                let peer = &self.tables.peers[i];
                crate::underlay::log_peer_state(peer.address, peer.name.as_deref(), was, l);
                if let Some(pc) = c.peers.get(i) {
                    pc.state_changes.inc();
                }
            }
        }
    }

    /// Once a second: what only the worker knows, for `warden stats`.
    fn publish(&self, now: Instant) {
        let c = &self.counters.workers[self.worker];
        for (i, p) in self.host.peers().iter().enumerate() {
            if let Some(pc) = c.peers.get(i) {
                pc.set_next_hop_mac(p.next_hop_mac);
                pc.up.set(u64::from(p.is_up(now)));
                pc.state
                    .set(self.st.peer_state.get(i).map_or(0, |l| *l as u64));
                pc.probes_sent.set(p.probes_sent);
                pc.replies.set(p.replies);
            }
        }
        for (p, pc) in self.ports.iter().zip(&c.ports) {
            // One getsockopt per port per second, not per packet.
            pc.rx_kernel_drops.set(p.stats().rx_kernel_drops);
        }
        c.fdb_entries.set(self.st.fdb.len() as u64);
        c.neighbors.set(self.st.router.neighbor_count() as u64);
        let f = &self.st.flows;
        c.flows.set(f.len() as u64);
        let ft = &c.flow_table;
        ft.established.set(f.established() as u64);
        ft.unestablished.set(f.unestablished() as u64);
        let s = f.stats();
        ft.created.set(s.created);
        ft.evicted.set(s.evicted);
        ft.expired.set(s.expired);
        ft.refused.set(s.refused);
        self.publish_flows();
        self.publish_learned();
        self.publish_tables();
    }

    /// Copy the FDB and the neighbors for `warden fdb` / `warden neighbors`
    /// (as the flows: reserved capacity, `try_lock`).
    fn publish_tables(&self) {
        let c = &self.counters.workers[self.worker];
        let now = self.st.now_s;
        if let Ok(mut rows) = c.fdb_rows.try_lock() {
            rows.clear();
            let room = rows.capacity();
            rows.extend(self.st.fdb.iter(now).take(room).map(
                |(vni, mac, location, is_static, age_secs)| crate::tables_dump::RawFdbRow {
                    vni,
                    mac,
                    location,
                    is_static,
                    age_secs,
                },
            ));
        }
        if let Ok(mut rows) = c.neighbor_rows.try_lock() {
            rows.clear();
            let room = rows.capacity();
            rows.extend(self.st.router.neighbors(now).take(room).map(
                |(vni, ip, mac, is_static, age_secs)| crate::tables_dump::RawNeighborRow {
                    vni,
                    ip,
                    mac,
                    is_static,
                    age_secs,
                },
            ));
        }
    }

    /// Copy the learn table for `warden policy learned` (as the flows).
    fn publish_learned(&self) {
        let c = &self.counters.workers[self.worker];
        c.policy.learned.set(self.st.learn.len() as u64);
        c.policy.learn_dropped.set(self.st.learn.dropped());
        if self.st.learn.is_empty() {
            return;
        }
        let Ok(mut rows) = c.policy.learn_rows.try_lock() else {
            return;
        };
        rows.clear();
        let room = rows.capacity();
        rows.extend(self.st.learn.iter().take(room).copied());
    }

    /// Copy flows into the rows `warden flows` reads: plain copies into a
    /// vector whose capacity was reserved at start; never waits for the lock.
    fn publish_flows(&self) {
        let c = &self.counters.workers[self.worker];
        let Ok(mut rows) = c.flow_rows.try_lock() else {
            return;
        };
        rows.clear();
        let now = self.st.now_s;
        let room = rows.capacity();
        for (r, e) in self.st.flows.iter().take(room) {
            let l7 = (e.l7 != crate::l7flows::NO_L7)
                .then(|| self.st.l7.get(e.l7))
                .flatten()
                .filter(|l| l.flow == r)
                .map(|l| (l.parser.name(), l.requests, l.last));
            rows.push(RawFlowRow { entry: *e, now, l7 });
        }
        for e in self.st.denials.iter().rev() {
            if rows.len() >= room {
                break;
            }
            rows.push(RawFlowRow {
                entry: *e,
                now,
                l7: None,
            });
        }
    }

    /// Housekeeping now, whatever the time since the last round (tests,
    /// benches, and after the host stack got a frame).
    pub fn force_housekeeping(&mut self) {
        self.last_housekeeping = self.start;
        self.host_due = true;
        self.housekeeping();
    }

    /// Rebuild the outer header template of every peer whose next-hop MAC
    /// the host stack learned or changed.
    fn refresh_peer_templates(&mut self) {
        let t = &*self.tables;
        for (i, peer) in t.peers.iter().enumerate() {
            let mac = self.host.next_hop(i);
            if mac != self.st.next_hops[i] {
                self.st.next_hops[i] = mac;
                self.st.templates[i] = mac.map(|dst| {
                    OuterTemplate::new(&overlay::OuterParams {
                        src_mac: self.st.underlay_mac,
                        dst_mac: dst,
                        src_ip: t.underlay_ip,
                        dst_ip: peer.address,
                        // Rewritten per packet: one template serves every VNI.
                        vni: overlay::Vni::new_masked(0),
                        dst_port: t.udp_port,
                        ttl: 64,
                        gbp: None,
                    })
                });
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Copy port `p`'s received burst into the running capture, if it wants
/// that port's rx (out of line: only a capture's bursts come here).
#[inline(never)]
fn capture_rx(capture: &mut Option<crate::capture::Tap>, rx: &crate::buffer::Burst, p: u16) {
    let Some(t) = capture.as_mut() else {
        return;
    };
    t.stamp();
    if t.wants_rx(p) {
        for buf in rx.iter() {
            t.take(buf.frame(), 0, None);
        }
    }
}
