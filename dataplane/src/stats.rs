//! `warden stats`: a snapshot of every counter, as JSON for scripts and as
//! a table for people. Built on the control thread from the shared
//! counters; never touches the worker.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::counters::{Counter, Counters, DropReason, WorkerReport};

/// Static names the snapshot needs (from the config).
#[derive(Debug, Clone)]
pub struct Names {
    pub instance: String,
    pub ports: Vec<String>,
    pub vnis: Vec<u32>,
    /// (address, optional name) of each peer.
    pub peers: Vec<(String, Option<String>)>,
    /// Identity ids (8 hex digits) -> document names.
    pub identities: Vec<(String, String)>,
    /// Policy rules by id: `set#n` (n counts from 1 in its set).
    pub rules: Vec<String>,
    /// Identity ids (8 hex digits) -> the document's labels.
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
    /// `[identity]` is configured (flows carry identities and verdicts).
    pub identity: bool,
}

/// `set#n` for each rule of `policy`, by rule id (n counts from 1).
pub fn rule_names(policy: Option<&policy::PolicySpec>) -> Vec<String> {
    policy.map_or_else(Vec::new, |p| {
        p.rules()
            .map(|(_, loc, set, _)| format!("{}#{}", set.name, loc.rule + 1))
            .collect()
    })
}

impl Names {
    /// The names of everything `cfg` configures.
    pub fn of(cfg: &config::WardenConfig) -> Names {
        Names {
            instance: cfg.instance.name.clone(),
            ports: cfg.ports.iter().map(|p| p.name.clone()).collect(),
            vnis: cfg.vnis.iter().map(|v| v.id.get()).collect(),
            peers: cfg
                .peers
                .iter()
                .map(|p| (p.address.to_string(), p.name.clone()))
                .collect(),
            identities: cfg
                .documents
                .iter()
                .map(|d| (format!("{:08x}", d.id().0), d.name.clone()))
                .collect(),
            rules: rule_names(cfg.policy.as_ref()),
            labels: cfg
                .documents
                .iter()
                .map(|d| (format!("{:08x}", d.id().0), d.labels.clone()))
                .collect(),
            identity: cfg.identity.is_some(),
        }
    }

    /// A published flow as `warden flows` and the flow log show it: VNI
    /// ids, peer addresses, port and rule names filled in (identities stay
    /// hex ids: see [`Names::identity_name`]).
    pub fn flow_row(&self, raw: &crate::flows::RawFlowRow) -> crate::flows::FlowRow {
        crate::flows::FlowRow::from_raw(
            raw,
            |v| self.vnis.get(usize::from(v)).copied().unwrap_or(0),
            |p| {
                self.peers
                    .get(usize::from(p))
                    .map_or_else(|| format!("#{p}"), |(a, _)| a.clone())
            },
            |p| {
                self.ports
                    .get(usize::from(p))
                    .cloned()
                    .unwrap_or_else(|| format!("#{p}"))
            },
            |r| self.rule_name(r),
        )
    }

    /// The name of an identity id as printed in flows; "unauthenticated"
    /// for 0, the hex id when no document is known.
    pub fn identity_name(&self, hex_id: &str) -> String {
        if hex_id == "00000000" {
            return "unauthenticated".to_string();
        }
        self.identities
            .iter()
            .find(|(id, _)| id == hex_id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| hex_id.to_string())
    }

    /// The name of policy rule `r`.
    pub fn rule_name(&self, r: policy::RuleId) -> String {
        self.rules
            .get(r.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("rule {}", r.0))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PortSnap {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    /// Frames the kernel dropped because warden's receive ring was full.
    pub rx_kernel_drops: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VniSnap {
    pub rx_decap_packets: u64,
    pub rx_decap_bytes: u64,
    pub tx_encap_packets: u64,
    pub tx_encap_bytes: u64,
    pub rx_local_packets: u64,
    pub tx_local_packets: u64,
    pub flood_copies: u64,
    pub routed_out: u64,
    pub routed_in: u64,
    pub macs_learned: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerSnap {
    pub name: Option<String>,
    pub next_hop_mac: Option<String>,
    pub up: bool,
    /// `up`, `down` (traffic to it dropped as `peer_down`) or `unknown`
    /// (not heard from yet); see `underlay::PEER_DETECTION_SECS`.
    #[serde(default)]
    pub state: String,
    /// Times the state changed since start.
    #[serde(default)]
    pub state_changes: u64,
    pub probes_sent: u64,
    pub replies: u64,
    /// VXLAN frames received from / sent to this peer.
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// Flow-table occupancy and churn (all workers).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowTableSnap {
    pub capacity: u64,
    pub established: u64,
    pub unestablished: u64,
    pub created: u64,
    /// Unestablished flows evicted for room (per-origin quota or full table).
    pub evicted: u64,
    pub expired: u64,
    /// New flows refused: every entry was established.
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerSnap {
    pub id: usize,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub busy_polls: u64,
    pub idle_polls: u64,
    pub packets: u64,
    pub busy_pct: f64,
    pub cycles_per_packet: f64,
}

/// Hits of one policy rule (flows it decided).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleSnap {
    pub hits: u64,
    /// Of those, denies a monitor or learn mode did not carry out.
    pub would_deny: u64,
}

/// What the policy decided (all workers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicySnap {
    /// Flows forwarded that the policy would deny (monitor, learn).
    pub would_deny: u64,
    /// Flows allowed before the destination's identity was known, and
    /// decided again at their first reply.
    pub provisional: u64,
    pub rechecked: u64,
    /// TCP RSTs and ICMP unreachables sent for `reject`, and those over
    /// the per-second budget (not sent).
    pub reject_answers: u64,
    pub reject_answers_limited: u64,
    /// Records in the learn table; records refused because it was full.
    pub learned: u64,
    pub learn_dropped: u64,
    /// L7: requests decided on inspected flows, segments held while a head
    /// was incomplete, connections cut (reset both ways).
    #[serde(default)]
    pub l7_requests: u64,
    #[serde(default)]
    pub l7_held: u64,
    #[serde(default)]
    pub l7_cut: u64,
    /// Refusals a monitor or learn set let through (flows then uninspected).
    #[serde(default)]
    pub l7_would_refuse: u64,
    /// Inspected flows, split heads and held segments refused because
    /// their origin held its share of the L7 room.
    #[serde(default)]
    pub l7_share_limited: u64,
    /// FQDN egress: (source, address) entries learned from DNS answers the
    /// policy let through; entries refused because the table was full.
    #[serde(default)]
    pub fqdn_learned: u64,
    #[serde(default)]
    pub fqdn_refused: u64,
    /// Flows decided per policy set (the sum of its rules).
    pub sets: BTreeMap<String, u64>,
    /// Per rule (`set#n`, n from 1 in its set) and `default`.
    pub rules: BTreeMap<String, RuleSnap>,
}

impl PolicySnap {
    fn take(names: &Names, c: &Counters) -> PolicySnap {
        let mut sets = BTreeMap::new();
        let mut rules = BTreeMap::new();
        let hits = |i: usize| {
            let h = c.sum(|w| w.policy.rule_hits.get(i).map_or(0, Counter::get));
            let d = c.sum(|w| w.policy.rule_would_deny.get(i).map_or(0, Counter::get));
            RuleSnap {
                hits: h,
                would_deny: d,
            }
        };
        for (i, n) in names.rules.iter().enumerate() {
            let r = hits(i);
            let set = n.rsplit_once('#').map_or(n.as_str(), |(s, _)| s);
            *sets.entry(set.to_string()).or_insert(0) += r.hits;
            rules.insert(n.clone(), r);
        }
        let default = hits(crate::counters::DEFAULT_RULE_SLOT);
        if !names.rules.is_empty() || default.hits > 0 {
            rules.insert("default".to_string(), default);
        }
        PolicySnap {
            would_deny: c.sum(|w| w.policy.would_deny.get()),
            provisional: c.sum(|w| w.policy.provisional.get()),
            rechecked: c.sum(|w| w.policy.rechecked.get()),
            reject_answers: c.sum(|w| w.policy.reject_answers.get()),
            reject_answers_limited: c.sum(|w| w.policy.reject_answers_limited.get()),
            learned: c.sum(|w| w.policy.learned.get()),
            learn_dropped: c.sum(|w| w.policy.learn_dropped.get()),
            l7_requests: c.sum(|w| w.policy.l7_requests.get()),
            l7_held: c.sum(|w| w.policy.l7_held.get()),
            l7_cut: c.sum(|w| w.policy.l7_cut.get()),
            l7_would_refuse: c.sum(|w| w.policy.l7_would_refuse.get()),
            l7_share_limited: c.sum(|w| w.policy.l7_share_limited.get()),
            fqdn_learned: c.sum(|w| w.policy.fqdn_learned.get()),
            fqdn_refused: c.sum(|w| w.policy.fqdn_refused.get()),
            sets,
            rules,
        }
    }
}

/// What `rx_ring_full` in the drop list means.
pub const RX_RING_DESCRIBE: &str =
    "frames the kernel dropped because a port's receive ring was full (before warden saw them)";

/// Everything `warden stats --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub instance: String,
    pub uptime_secs: u64,
    pub tsc_hz: u64,
    pub ports: BTreeMap<String, PortSnap>,
    pub vni: BTreeMap<String, VniSnap>,
    pub peers: BTreeMap<String, PeerSnap>,
    pub routed_packets: u64,
    /// Frames the switch forwarded by a flow's cached decision (the FDB
    /// lookup, and for routed flows the route stage, skipped).
    #[serde(default)]
    pub fwd_cache_hits: u64,
    /// Of those, frames the express lane took from the wire to encap or
    /// delivery in one pass.
    #[serde(default)]
    pub express_hits: u64,
    pub icmp_errors_sent: u64,
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    /// ARP to the gateway learned from and consumed.
    pub arp_consumed: u64,
    pub fdb_entries: u64,
    pub neighbors: u64,
    /// Flows in the flow table.
    pub flows: u64,
    pub flow_table: FlowTableSnap,
    /// Packets this warden stamped with an identity header.
    pub identity_stamped: u64,
    /// Announce-only identity packets verified and consumed.
    pub identity_announces: u64,
    /// Every packet dropped: the engine's drops (`drops`, one reason
    /// each) plus the frames the kernel dropped because a port's receive
    /// ring was full (`rx_ring_drops`).
    pub drops_total: u64,
    pub drops: BTreeMap<String, u64>,
    /// Frames lost before warden saw them: receive rings full (all ports).
    #[serde(default)]
    pub rx_ring_drops: u64,
    /// `[identity]` is configured: flows carry identities and verdicts.
    #[serde(default)]
    pub identity: bool,
    pub policy: PolicySnap,
    /// The flow log: events written, events counted instead.
    #[serde(default)]
    pub flow_log: FlowLogSnap,
    pub workers: Vec<WorkerSnap>,
}

/// The flow log's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FlowLogSnap {
    pub events: u64,
    pub dropped: u64,
}

impl Snapshot {
    pub fn take(names: &Names, c: &Counters, uptime_secs: u64, tsc_hz: u64) -> Snapshot {
        let ports = names
            .ports
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let sum = |f: fn(&crate::counters::PortCounters) -> u64| {
                    c.sum(|w| w.ports.get(i).map_or(0, f))
                };
                (
                    n.clone(),
                    PortSnap {
                        rx_packets: sum(|p| p.rx_packets.get()),
                        rx_bytes: sum(|p| p.rx_bytes.get()),
                        tx_packets: sum(|p| p.tx_packets.get()),
                        tx_bytes: sum(|p| p.tx_bytes.get()),
                        tx_dropped: sum(|p| p.tx_dropped.get()),
                        rx_errors: sum(|p| p.rx_errors.get()),
                        rx_kernel_drops: sum(|p| p.rx_kernel_drops.get()),
                    },
                )
            })
            .collect();
        let vni = names
            .vnis
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let sum = |f: fn(&crate::counters::VniCounters) -> u64| {
                    c.sum(|w| w.vnis.get(i).map_or(0, f))
                };
                (
                    id.to_string(),
                    VniSnap {
                        rx_decap_packets: sum(|v| v.rx_decap_packets.get()),
                        rx_decap_bytes: sum(|v| v.rx_decap_bytes.get()),
                        tx_encap_packets: sum(|v| v.tx_encap_packets.get()),
                        tx_encap_bytes: sum(|v| v.tx_encap_bytes.get()),
                        rx_local_packets: sum(|v| v.rx_local_packets.get()),
                        tx_local_packets: sum(|v| v.tx_local_packets.get()),
                        flood_copies: sum(|v| v.flood_copies.get()),
                        routed_out: sum(|v| v.routed_out.get()),
                        routed_in: sum(|v| v.routed_in.get()),
                        macs_learned: sum(|v| v.macs_learned.get()),
                    },
                )
            })
            .collect();
        let peers = names
            .peers
            .iter()
            .enumerate()
            .map(|(i, (addr, name))| {
                // The worker that owns the host stack publishes peer state.
                let owner = c
                    .workers
                    .iter()
                    .filter_map(|w| w.peers.get(i))
                    .find(|p| p.probes_sent.get() > 0 || p.next_hop_mac().is_some());
                let sum = |f: fn(&crate::counters::PeerCounters) -> u64| {
                    c.sum(|w| w.peers.get(i).map_or(0, f))
                };
                (
                    addr.clone(),
                    PeerSnap {
                        name: name.clone(),
                        next_hop_mac: owner.and_then(|p| p.next_hop_mac()).map(|m| m.to_string()),
                        up: owner.is_some_and(|p| p.up.get() != 0),
                        state: crate::underlay::Liveness::from_u64(
                            c.workers
                                .iter()
                                .filter_map(|w| w.peers.get(i))
                                .map(|p| p.state.get())
                                .max()
                                .unwrap_or(0),
                        )
                        .name()
                        .to_string(),
                        state_changes: sum(|p| p.state_changes.get()),
                        probes_sent: owner.map_or(0, |p| p.probes_sent.get()),
                        replies: owner.map_or(0, |p| p.replies.get()),
                        rx_packets: sum(|p| p.rx_packets.get()),
                        tx_packets: sum(|p| p.tx_packets.get()),
                    },
                )
            })
            .collect();
        let drops = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), c.drop_count(*r)))
            .collect();
        let workers = c
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let r = WorkerReport::from_counters(i, w);
                WorkerSnap {
                    id: r.id,
                    busy_cycles: r.busy_cycles,
                    idle_cycles: r.idle_cycles,
                    busy_polls: r.busy_polls,
                    idle_polls: r.idle_polls,
                    packets: r.packets,
                    busy_pct: r.busy_pct,
                    cycles_per_packet: r.cycles_per_packet,
                }
            })
            .collect();
        let rx_ring_drops = c.sum(|w| w.ports.iter().map(|p| p.rx_kernel_drops.get()).sum());
        let flow_table = FlowTableSnap {
            capacity: c.sum(|w| w.flow_table.capacity.get()),
            established: c.sum(|w| w.flow_table.established.get()),
            unestablished: c.sum(|w| w.flow_table.unestablished.get()),
            created: c.sum(|w| w.flow_table.created.get()),
            evicted: c.sum(|w| w.flow_table.evicted.get()),
            expired: c.sum(|w| w.flow_table.expired.get()),
            refused: c.sum(|w| w.flow_table.refused.get()),
        };
        Snapshot {
            instance: names.instance.clone(),
            uptime_secs,
            tsc_hz,
            ports,
            vni,
            peers,
            routed_packets: c.sum(|w| w.routed_packets.get()),
            fwd_cache_hits: c.sum(|w| w.fwd_cache_hits.get()),
            express_hits: c.sum(|w| w.express_hits.get()),
            icmp_errors_sent: c.sum(|w| w.icmp_errors_sent.get()),
            arp_replies_sent: c.sum(|w| w.arp_replies_sent.get()),
            arp_requests_sent: c.sum(|w| w.arp_requests_sent.get()),
            arp_consumed: c.sum(|w| w.arp_consumed.get()),
            fdb_entries: c.sum(|w| w.fdb_entries.get()),
            neighbors: c.sum(|w| w.neighbors.get()),
            flows: c.sum(|w| w.flows.get()),
            flow_table,
            identity_stamped: c.sum(|w| w.identity_stamped.get()),
            identity_announces: c.sum(|w| w.identity_announces.get()),
            drops_total: c.drops_total() + rx_ring_drops,
            drops,
            rx_ring_drops,
            identity: names.identity,
            policy: PolicySnap::take(names, c),
            flow_log: FlowLogSnap {
                events: c.sum(|w| w.flow_log_events.get()),
                dropped: c.sum(|w| w.flow_log_dropped.get()),
            },
            workers,
        }
    }

    /// The table `warden stats` prints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "warden {} (up {} s)", self.instance, self.uptime_secs);
        let _ = writeln!(
            s,
            "\nports{:>28}{:>14}{:>12}{:>14}{:>12}{:>14}",
            "rx pkts", "rx bytes", "tx pkts", "tx bytes", "tx drop", "rx ring drop"
        );
        for (n, p) in &self.ports {
            let _ = writeln!(
                s,
                "  {:<20}{:>13}{:>14}{:>12}{:>14}{:>12}{:>14}",
                n,
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.tx_dropped,
                p.rx_kernel_drops
            );
        }
        let _ = writeln!(
            s,
            "\nvni{:>22}{:>12}{:>12}{:>12}{:>10}{:>11}{:>11}{:>8}",
            "decap", "encap", "local rx", "local tx", "flood", "routed out", "routed in", "macs"
        );
        for (id, v) in &self.vni {
            let _ = writeln!(
                s,
                "  {:<10}{:>13}{:>12}{:>12}{:>12}{:>10}{:>11}{:>11}{:>8}",
                id,
                v.rx_decap_packets,
                v.tx_encap_packets,
                v.rx_local_packets,
                v.tx_local_packets,
                v.flood_copies,
                v.routed_out,
                v.routed_in,
                v.macs_learned
            );
        }
        let _ = writeln!(s, "\npeers");
        for (addr, p) in &self.peers {
            let _ = writeln!(
                s,
                "  {:<16} {:<12} next hop {:<18} {} (probes {}, replies {}) rx {} tx {}",
                addr,
                p.name.as_deref().unwrap_or("-"),
                p.next_hop_mac.as_deref().unwrap_or("unresolved"),
                if p.state.is_empty() {
                    if p.up {
                        "up"
                    } else {
                        "down"
                    }
                } else {
                    p.state.as_str()
                },
                p.probes_sent,
                p.replies,
                p.rx_packets,
                p.tx_packets
            );
        }
        let _ = writeln!(
            s,
            "\nrouted {}  icmp errors {}  arp replies {}  arp requests {}  fdb {}  neighbors {}  cached forwards {} (express {})",
            self.routed_packets,
            self.icmp_errors_sent,
            self.arp_replies_sent,
            self.arp_requests_sent,
            self.fdb_entries,
            self.neighbors,
            self.fwd_cache_hits,
            self.express_hits
        );
        let f = &self.flow_table;
        let _ = writeln!(
            s,
            "\nflows {} of {}: established {}  unestablished {}  (created {}  evicted {}  expired {}  refused {})",
            self.flows,
            f.capacity,
            f.established,
            f.unestablished,
            f.created,
            f.evicted,
            f.expired,
            f.refused
        );
        let _ = writeln!(
            s,
            "identity: stamped {}  announces received {}",
            self.identity_stamped, self.identity_announces
        );
        let p = &self.policy;
        if !p.rules.is_empty() {
            let _ = writeln!(
                s,
                "\npolicy: would_deny {}  provisional {} (rechecked {})  reject answers {}  learned {} (dropped {})",
                p.would_deny, p.provisional, p.rechecked, p.reject_answers, p.learned, p.learn_dropped
            );
            let _ = writeln!(s, "  {:<32}{:>12}{:>12}", "rule", "flows", "would deny");
            for (n, r) in &p.rules {
                let _ = writeln!(s, "  {:<32}{:>12}{:>12}", n, r.hits, r.would_deny);
            }
        }
        let _ = writeln!(s, "\ndrops (total {})", self.drops_total);
        for r in DropReason::ALL {
            let n = self.drops.get(r.name()).copied().unwrap_or(0);
            if n > 0 {
                let _ = writeln!(s, "  {:<22}{:>12}  {}", r.name(), n, r.describe());
            }
        }
        if self.rx_ring_drops > 0 {
            let _ = writeln!(
                s,
                "  {:<22}{:>12}  {}",
                "rx_ring_full", self.rx_ring_drops, RX_RING_DESCRIBE
            );
        }
        let _ = writeln!(s, "\nworkers (tsc {:.2} GHz)", self.tsc_hz as f64 / 1e9);
        for w in &self.workers {
            let _ = writeln!(
                s,
                "  worker {}: packets {}  busy {:.1}%  processing cycles {}  idle cycles {}  cycles/packet {:.0}",
                w.id, w.packets, w.busy_pct, w.busy_cycles, w.idle_cycles, w.cycles_per_packet
            );
        }
        s
    }
}

/// Paths (dotted, `*` for any key) of values that are levels, not counts:
/// `since` keeps them as they are now instead of subtracting.
const GAUGES: &[&str] = &[
    "uptime_secs",
    "tsc_hz",
    "fdb_entries",
    "neighbors",
    "flows",
    "flow_table.capacity",
    "flow_table.established",
    "flow_table.unestablished",
    "policy.learned",
    "workers.*.id",
];

fn is_gauge(path: &[String]) -> bool {
    GAUGES.iter().any(|g| {
        let parts: Vec<&str> = g.split('.').collect();
        parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
    })
}

/// `now - base` for every unsigned count in `now` that is not a gauge.
fn subtract(now: &mut serde_json::Value, base: &serde_json::Value, path: &mut Vec<String>) {
    use serde_json::Value;
    match now {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                if let Some(b) = base.get(k) {
                    subtract(v, b, path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push("*".into());
                if let Some(b) = base.get(i) {
                    subtract(v, b, path);
                }
                path.pop();
            }
        }
        Value::Number(n) => {
            if let (Some(a), Some(b)) = (n.as_u64(), base.as_u64()) {
                if !is_gauge(path) {
                    *now = Value::from(a.saturating_sub(b));
                }
            }
        }
        _ => {}
    }
}

impl Snapshot {
    /// What moved since `base`: every counter minus its value in `base`
    /// (gauges such as flows, FDB entries and peer state as they are now),
    /// cycles per packet and busy share over the interval, and
    /// `uptime_secs` set to `secs`, the seconds the interval covers.
    pub fn since(&self, base: &Snapshot, secs: u64) -> Snapshot {
        let (Ok(mut now), Ok(b)) = (serde_json::to_value(self), serde_json::to_value(base)) else {
            return self.clone();
        };
        subtract(&mut now, &b, &mut Vec::new());
        let Ok(mut d) = serde_json::from_value::<Snapshot>(now) else {
            return self.clone();
        };
        d.uptime_secs = secs;
        for w in &mut d.workers {
            let total = w.busy_cycles + w.idle_cycles;
            w.busy_pct = if total == 0 {
                0.0
            } else {
                w.busy_cycles as f64 * 100.0 / total as f64
            };
            w.cycles_per_packet = if w.packets == 0 {
                0.0
            } else {
                w.busy_cycles as f64 / w.packets as f64
            };
        }
        d
    }

    /// The lines `warden stats --interval` prints for `d`, the counters
    /// moved over `secs` seconds ([`Snapshot::since`]): rates per port,
    /// drops per second by reason, and each worker's busy share and
    /// processing cycles per packet over the interval.
    pub fn render_rates(d: &Snapshot, secs: f64) -> String {
        let secs = secs.max(1e-3);
        let rate = |n: u64| n as f64 / secs;
        let mut s = String::new();
        let _ = writeln!(s, "warden {}: last {:.1} s", d.instance, secs);
        let _ = writeln!(
            s,
            "  {:<20}{:>12}{:>14}{:>12}{:>14}{:>12}",
            "port", "rx pkt/s", "rx B/s", "tx pkt/s", "tx B/s", "ring drop/s"
        );
        for (n, p) in &d.ports {
            let _ = writeln!(
                s,
                "  {:<20}{:>12.0}{:>14.0}{:>12.0}{:>14.0}{:>12.0}",
                n,
                rate(p.rx_packets),
                rate(p.rx_bytes),
                rate(p.tx_packets),
                rate(p.tx_bytes),
                rate(p.rx_kernel_drops)
            );
        }
        let mut reasons: Vec<(&str, u64)> = d
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        if d.rx_ring_drops > 0 {
            reasons.push(("rx_ring_full", d.rx_ring_drops));
        }
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        let detail: Vec<String> = reasons
            .iter()
            .map(|(k, n)| format!("{k} {:.0}", rate(*n)))
            .collect();
        let _ = writeln!(
            s,
            "  drops/s {:.0}{}",
            rate(d.drops_total),
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", detail.join(", "))
            }
        );
        for w in &d.workers {
            let _ = writeln!(
                s,
                "  worker {}: {:.0} pkt/s  busy {:.1}%  cycles/packet {:.0}",
                w.id,
                rate(w.packets),
                w.busy_pct,
                w.cycles_per_packet
            );
        }
        s
    }
}

impl Snapshot {
    /// What `warden stats --json` of an instance with `cfg` looks like
    /// (every counter zero): the shape lab checks' paths are checked against.
    pub fn shape(cfg: &config::WardenConfig) -> serde_json::Value {
        let names = Names::of(cfg);
        let c = Counters::new(cfg.ports.len(), cfg.vnis.len(), cfg.peers.len(), 1);
        serde_json::to_value(Snapshot::take(&names, &c, 0, 0)).unwrap_or_default()
    }
}

/// Why dotted `path` names no counter in `shape` (a [`Snapshot::shape`]),
/// with the keys that exist where it went wrong; None when it does.
pub fn path_problem(shape: &serde_json::Value, path: &str) -> Option<String> {
    let mut node = shape;
    let mut walked = Vec::new();
    for seg in path.split('.') {
        let next = match node {
            serde_json::Value::Object(map) => map.get(seg),
            serde_json::Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            let at = if walked.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{}`", walked.join("."))
            };
            let keys = match node {
                serde_json::Value::Object(map) => {
                    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                    format!("; {at} has: {}", keys.join(", "))
                }
                serde_json::Value::Array(items) => format!("; {at} has indexes 0..{}", items.len()),
                _ => format!("; {at} is a value, not a table"),
            };
            return Some(format!("no counter `{path}`: `{seg}` is not in {at}{keys}"));
        };
        walked.push(seg);
        node = next;
    }
    (!node.is_u64())
        .then(|| format!("`{path}` is not a counter (it is {node}); name a number under it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            instance: "t".into(),
            ports: vec!["uplink".into()],
            vnis: vec![100],
            peers: vec![("10.0.0.2".into(), None)],
            identities: Vec::new(),
            rules: Vec::new(),
            identity: true,
            labels: Default::default(),
        }
    }

    #[test]
    fn ring_drops_are_in_the_total() {
        let c = Counters::new(1, 1, 1, 1);
        c.workers[0].ports[0].rx_kernel_drops.set(881);
        c.workers[0].count_drop(DropReason::TxFull);
        let s = Snapshot::take(&names(), &c, 1, 1);
        assert_eq!(s.drops_total, 882);
        assert_eq!(s.rx_ring_drops, 881);
        assert!(s.render().contains("rx_ring_full"), "{}", s.render());
    }

    #[test]
    fn since_subtracts_counters_keeps_gauges_and_recomputes_cycles() {
        let c = Counters::new(1, 1, 1, 1);
        let w = &c.workers[0];
        w.ports[0].rx_packets.add(100);
        w.busy_cycles.add(1_000_000);
        w.idle_cycles.add(9_000_000);
        w.packets.add(100);
        w.flows.set(5);
        let a = Snapshot::take(&names(), &c, 10, 1);
        w.ports[0].rx_packets.add(50);
        w.busy_cycles.add(50_000);
        w.idle_cycles.add(50_000);
        w.packets.add(50);
        w.flows.set(6);
        w.count_drop(DropReason::PeerDown);
        w.peers[0].tx_packets.add(4);
        let b = Snapshot::take(&names(), &c, 12, 1);
        let d = b.since(&a, 2);
        assert_eq!(d.ports["uplink"].rx_packets, 50);
        assert_eq!(d.flows, 6);
        assert_eq!(d.uptime_secs, 2);
        assert_eq!(d.drops["peer_down"], 1);
        assert_eq!(d.drops_total, 1);
        assert_eq!(d.peers["10.0.0.2"].tx_packets, 4);
        assert_eq!(d.workers[0].cycles_per_packet, 1000.0);
        assert_eq!(d.workers[0].busy_pct, 50.0);
        let text = Snapshot::render_rates(&d, 2.0);
        assert!(
            text.contains("drops/s 0 (peer_down 0)") || text.contains("peer_down"),
            "{text}"
        );
        assert!(text.contains("cycles/packet 1000"), "{text}");
    }
}
