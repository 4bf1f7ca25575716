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
    /// The names of an instance configured by `cfg`.
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
        }
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
    pub drops_total: u64,
    pub drops: BTreeMap<String, u64>,
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
            drops_total: c.drops_total(),
            drops,
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
                if p.up { "up" } else { "down" },
                p.probes_sent,
                p.replies,
                p.rx_packets,
                p.tx_packets
            );
        }
        let _ = writeln!(
            s,
            "\nrouted {}  icmp errors {}  arp replies {}  arp requests {}  fdb {}  neighbors {}",
            self.routed_packets,
            self.icmp_errors_sent,
            self.arp_replies_sent,
            self.arp_requests_sent,
            self.fdb_entries,
            self.neighbors
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
