//! Prometheus metrics: `GET /metrics` on `[instance] metrics = "ADDR:PORT"`,
//! in the OpenMetrics text format (prometheus-client's encoder). Each scrape
//! takes a [`Snapshot`] of the shared counters (the same numbers `warden
//! stats` prints; the workers never wait for it) and encodes it; nothing is
//! kept between scrapes. Served by its own thread, a thread per connection
//! (at most [`MAX_CLIENTS`] at once, each given [`CLIENT_TIMEOUT`]).
//!
//! Names follow Prometheus conventions: `warden_` prefix, base units
//! (`_bytes`, `_seconds`), counters end in `_total` (the encoder adds it),
//! one metric per quantity with labels for what it is per (`port`, `vni`,
//! `peer`, `reason`, `set`, `rule`, `worker`, `state`, `kind`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::counters::Counters;
use crate::stats::{Names, Snapshot};

/// Scrapes served at once; more wait in the listen backlog.
pub const MAX_CLIENTS: usize = 8;
/// How long a client may take to send its request.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request head read.
const REQUEST_MAX: usize = 8192;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One scrape's numbers.
#[derive(Debug)]
struct Scrape(Snapshot);

type Labels<'a> = Vec<(&'static str, &'a str)>;

struct Enc<'a, 'b> {
    e: &'a mut DescriptorEncoder<'b>,
}

impl Enc<'_, '_> {
    /// One metric of `kind` with a sample per label set.
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: &[(Labels<'_>, f64)],
    ) -> Result<(), std::fmt::Error> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = self.e.encode_descriptor(name, help, None, kind)?;
        if let [(labels, v)] = samples {
            if labels.is_empty() {
                return put(kind, m, *v);
            }
        }
        for (labels, v) in samples {
            put(kind, m.encode_family(labels)?, *v)?;
        }
        Ok(())
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
        self.family(name, help, MetricType::Counter, &[(Vec::new(), v as f64)])
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
        self.family(name, help, MetricType::Gauge, &[(Vec::new(), v)])
    }
}

/// One sample (every value here is a whole number).
fn put(kind: MetricType, m: MetricEncoder<'_>, v: f64) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(v as u64).encode(m),
        _ => ConstGauge::new(v as i64).encode(m),
    }
}

/// Samples of `f` over a map, labelled `key = map key`.
fn per<'a, T>(
    key: &'static str,
    map: &'a std::collections::BTreeMap<String, T>,
    f: impl Fn(&T) -> u64,
) -> Vec<(Labels<'a>, f64)> {
    map.iter()
        .map(|(k, v)| (vec![(key, k.as_str())], f(v) as f64))
        .collect()
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let s = &self.0;
        let mut e = Enc { e: &mut encoder };
        let info = [(
            vec![
                ("instance", s.instance.as_str()),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        )];
        e.family(
            "warden_info",
            "The instance's name and version.",
            Gauge,
            &info,
        )?;
        e.gauge(
            "warden_uptime_seconds",
            "Seconds since the instance started.",
            s.uptime_secs as f64,
        )?;

        // Ports.
        let port = |name: &str, help: &str, f: fn(&crate::stats::PortSnap) -> u64, e: &mut Enc| {
            e.family(name, help, Counter, &per("port", &s.ports, f))
        };
        port(
            "warden_port_rx_packets",
            "Packets received on the port.",
            |p| p.rx_packets,
            &mut e,
        )?;
        port(
            "warden_port_rx_bytes",
            "Bytes received on the port.",
            |p| p.rx_bytes,
            &mut e,
        )?;
        port(
            "warden_port_tx_packets",
            "Packets sent on the port.",
            |p| p.tx_packets,
            &mut e,
        )?;
        port(
            "warden_port_tx_bytes",
            "Bytes sent on the port.",
            |p| p.tx_bytes,
            &mut e,
        )?;
        port(
            "warden_port_tx_dropped",
            "Packets the port could not send.",
            |p| p.tx_dropped,
            &mut e,
        )?;
        port(
            "warden_port_rx_errors",
            "Receive errors on the port.",
            |p| p.rx_errors,
            &mut e,
        )?;
        port(
            "warden_port_rx_ring_drops",
            "Packets the kernel dropped because the port's receive ring was full.",
            |p| p.rx_kernel_drops,
            &mut e,
        )?;

        // VNIs.
        let vni = |name: &str, help: &str, f: fn(&crate::stats::VniSnap) -> u64, e: &mut Enc| {
            e.family(name, help, Counter, &per("vni", &s.vni, f))
        };
        vni(
            "warden_vni_decap_packets",
            "VXLAN packets decapsulated in the VNI.",
            |v| v.rx_decap_packets,
            &mut e,
        )?;
        vni(
            "warden_vni_decap_bytes",
            "Bytes of VXLAN packets decapsulated in the VNI.",
            |v| v.rx_decap_bytes,
            &mut e,
        )?;
        vni(
            "warden_vni_encap_packets",
            "Packets encapsulated in the VNI.",
            |v| v.tx_encap_packets,
            &mut e,
        )?;
        vni(
            "warden_vni_encap_bytes",
            "Bytes of packets encapsulated in the VNI.",
            |v| v.tx_encap_bytes,
            &mut e,
        )?;
        vni(
            "warden_vni_local_rx_packets",
            "Packets received from local ports of the VNI.",
            |v| v.rx_local_packets,
            &mut e,
        )?;
        vni(
            "warden_vni_local_tx_packets",
            "Packets delivered to local ports of the VNI.",
            |v| v.tx_local_packets,
            &mut e,
        )?;
        vni(
            "warden_vni_flood_copies",
            "Copies made to flood unknown, broadcast or multicast frames.",
            |v| v.flood_copies,
            &mut e,
        )?;
        vni(
            "warden_vni_routed_out",
            "Packets routed out of the VNI by the gateway.",
            |v| v.routed_out,
            &mut e,
        )?;
        vni(
            "warden_vni_routed_in",
            "Packets routed into the VNI by the gateway.",
            |v| v.routed_in,
            &mut e,
        )?;
        vni(
            "warden_vni_macs_learned",
            "MAC addresses learned in the VNI.",
            |v| v.macs_learned,
            &mut e,
        )?;

        // Peers.
        let peers: Vec<(Labels, &crate::stats::PeerSnap)> = s
            .peers
            .iter()
            .map(|(addr, p)| {
                let mut l = vec![("peer", addr.as_str())];
                if let Some(n) = &p.name {
                    l.push(("name", n.as_str()));
                }
                (l, p)
            })
            .collect();
        let peer = |f: fn(&crate::stats::PeerSnap) -> u64| -> Vec<(Labels, f64)> {
            peers
                .iter()
                .map(|(l, p)| (l.clone(), f(p) as f64))
                .collect()
        };
        e.family(
            "warden_peer_up",
            "1 while the peer answers its probes.",
            Gauge,
            &peer(|p| u64::from(p.up)),
        )?;
        e.family(
            "warden_peer_rx_packets",
            "Packets received from the peer.",
            Counter,
            &peer(|p| p.rx_packets),
        )?;
        e.family(
            "warden_peer_tx_packets",
            "Packets sent to the peer.",
            Counter,
            &peer(|p| p.tx_packets),
        )?;
        e.family(
            "warden_peer_probes_sent",
            "Liveness probes sent to the peer.",
            Counter,
            &peer(|p| p.probes_sent),
        )?;
        e.family(
            "warden_peer_probe_replies",
            "Liveness probe replies from the peer.",
            Counter,
            &peer(|p| p.replies),
        )?;

        // Drops.
        e.family(
            "warden_drops",
            "Packets dropped, by reason (see `warden stats` for each reason's meaning).",
            Counter,
            &per("reason", &s.drops, |v| *v),
        )?;

        // Flow table, FDB, neighbors.
        let ft = &s.flow_table;
        let states = [
            (vec![("state", "established")], ft.established as f64),
            (vec![("state", "unestablished")], ft.unestablished as f64),
        ];
        e.family(
            "warden_flow_table_entries",
            "Flow-table entries, by state.",
            Gauge,
            &states,
        )?;
        e.gauge(
            "warden_flow_table_capacity",
            "Flow-table entries that fit.",
            ft.capacity as f64,
        )?;
        e.counter(
            "warden_flow_table_created",
            "Flow-table entries created.",
            ft.created,
        )?;
        e.counter(
            "warden_flow_table_evicted",
            "Unestablished entries evicted to make room.",
            ft.evicted,
        )?;
        e.counter(
            "warden_flow_table_expired",
            "Entries that aged out.",
            ft.expired,
        )?;
        e.counter(
            "warden_flow_table_refused",
            "New flows refused because every entry was established.",
            ft.refused,
        )?;
        e.gauge("warden_fdb_entries", "FDB entries.", s.fdb_entries as f64)?;
        e.gauge(
            "warden_neighbors",
            "Inner neighbors of the gateway.",
            s.neighbors as f64,
        )?;

        // The L3 gateway and identity.
        e.counter(
            "warden_routed_packets",
            "Packets routed between VNIs.",
            s.routed_packets,
        )?;
        e.counter(
            "warden_fwd_cache_hits",
            "Frames forwarded by a flow's cached switching or routing decision.",
            s.fwd_cache_hits,
        )?;
        e.counter(
            "warden_express_hits",
            "Of the cached forwards, frames the express lane took from the wire to encap or delivery in one pass.",
            s.express_hits,
        )?;
        e.counter(
            "warden_icmp_errors_sent",
            "ICMP errors the gateway sent.",
            s.icmp_errors_sent,
        )?;
        e.counter(
            "warden_arp_replies_sent",
            "ARP replies the gateway sent.",
            s.arp_replies_sent,
        )?;
        e.counter(
            "warden_arp_requests_sent",
            "ARP requests the gateway sent.",
            s.arp_requests_sent,
        )?;
        e.counter(
            "warden_identity_stamped",
            "Packets stamped with an identity header.",
            s.identity_stamped,
        )?;
        e.counter(
            "warden_identity_announces",
            "Announce-only identity packets verified.",
            s.identity_announces,
        )?;

        // Policy.
        let p = &s.policy;
        let rule_samples = |f: fn(&crate::stats::RuleSnap) -> u64| -> Vec<(Labels, f64)> {
            p.rules
                .iter()
                .map(|(name, r)| {
                    let set = name.rsplit_once('#').map_or(name.as_str(), |(s, _)| s);
                    (vec![("set", set), ("rule", name.as_str())], f(r) as f64)
                })
                .collect()
        };
        e.family(
            "warden_policy_rule_hits",
            "Flows decided by each rule (`default`: no rule matched).",
            Counter,
            &rule_samples(|r| r.hits),
        )?;
        e.family(
            "warden_policy_rule_would_deny",
            "Decisions a monitor or learn set forwarded although the rule denies.",
            Counter,
            &rule_samples(|r| r.would_deny),
        )?;
        e.family(
            "warden_policy_set_hits",
            "Flows decided by each policy set.",
            Counter,
            &per("set", &p.sets, |v| *v),
        )?;
        e.counter(
            "warden_policy_would_deny",
            "Flows forwarded although the policy would deny them.",
            p.would_deny,
        )?;
        e.counter(
            "warden_policy_provisional",
            "Flows allowed before their destination's identity was known.",
            p.provisional,
        )?;
        e.counter(
            "warden_policy_rechecked",
            "Provisional flows decided again at their first reply.",
            p.rechecked,
        )?;
        e.counter(
            "warden_policy_reject_answers",
            "TCP RSTs and ICMP unreachables sent for reject and revoked flows.",
            p.reject_answers,
        )?;
        e.counter(
            "warden_policy_reject_answers_limited",
            "Answers not sent because the second's budget was spent.",
            p.reject_answers_limited,
        )?;
        e.gauge(
            "warden_policy_learned_records",
            "Records in the learn table.",
            p.learned as f64,
        )?;
        e.counter(
            "warden_policy_learn_dropped",
            "Flows not recorded because the learn table was full.",
            p.learn_dropped,
        )?;
        e.counter(
            "warden_l7_requests",
            "Requests decided on inspected flows.",
            p.l7_requests,
        )?;
        e.counter(
            "warden_l7_held",
            "Segments held while a request head was incomplete.",
            p.l7_held,
        )?;
        e.counter(
            "warden_l7_cut",
            "Inspected connections cut (reset both ways).",
            p.l7_cut,
        )?;
        e.counter(
            "warden_l7_would_refuse",
            "Refusals a monitor or learn set let through.",
            p.l7_would_refuse,
        )?;
        e.counter(
            "warden_l7_share_limited",
            "Inspected flows or split heads refused for their origin's share.",
            p.l7_share_limited,
        )?;
        e.counter(
            "warden_fqdn_learned",
            "Addresses learned from DNS answers for FQDN rules.",
            p.fqdn_learned,
        )?;
        e.counter(
            "warden_fqdn_refused",
            "DNS answers not learned because the table was full.",
            p.fqdn_refused,
        )?;

        // Workers.
        let ids: Vec<String> = s.workers.iter().map(|w| w.id.to_string()).collect();
        let mut cycles = Vec::new();
        let mut polls = Vec::new();
        let mut packets = Vec::new();
        for (w, id) in s.workers.iter().zip(&ids) {
            cycles.push((
                vec![("worker", id.as_str()), ("kind", "busy")],
                w.busy_cycles as f64,
            ));
            cycles.push((
                vec![("worker", id.as_str()), ("kind", "idle")],
                w.idle_cycles as f64,
            ));
            polls.push((
                vec![("worker", id.as_str()), ("kind", "busy")],
                w.busy_polls as f64,
            ));
            polls.push((
                vec![("worker", id.as_str()), ("kind", "idle")],
                w.idle_polls as f64,
            ));
            packets.push((vec![("worker", id.as_str())], w.packets as f64));
        }
        e.family(
            "warden_worker_cycles",
            "TSC cycles of each worker, busy (a poll round that moved packets) or idle; rate() over warden_tsc_hz is the busy share.",
            Counter,
            &cycles,
        )?;
        e.family(
            "warden_worker_polls",
            "Poll rounds of each worker, busy or idle.",
            Counter,
            &polls,
        )?;
        e.family(
            "warden_worker_packets",
            "Packets each worker moved.",
            Counter,
            &packets,
        )?;
        e.gauge(
            "warden_tsc_hz",
            "TSC cycles per second (to turn cycles into time).",
            s.tsc_hz as f64,
        )?;
        Ok(())
    }
}

/// The metrics of `snap` in the OpenMetrics text format.
pub fn encode(snap: Snapshot) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Scrape(snap)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)?;
    Ok(out)
}

/// A bound metrics listener.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(MetricsServer { listener, addr })
    }

    /// The address it listens on (the port, when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve scrapes until `quit` is set.
    pub fn serve(
        self,
        names: Arc<RwLock<Names>>,
        counters: Arc<Counters>,
        started: Instant,
        quit: Arc<AtomicBool>,
    ) {
        let busy = Arc::new(AtomicUsize::new(0));
        while !quit.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) if busy.load(Ordering::Relaxed) < MAX_CLIENTS => {
                    busy.fetch_add(1, Ordering::Relaxed);
                    let (names, counters, done) = (names.clone(), counters.clone(), busy.clone());
                    let spawned = std::thread::Builder::new()
                        .name("warden-metrics".into())
                        .spawn(move || {
                            let _ = answer(stream, &names, &counters, started);
                            done.fetch_sub(1, Ordering::Relaxed);
                        });
                    if spawned.is_err() {
                        // The stream went with the closure; count it done.
                        busy.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                // Too many at once: this one is closed unanswered.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    tracing::warn!(addr = %self.addr, error = %e, "metrics listener accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// Read one request, answer it, close.
fn answer(
    mut stream: TcpStream,
    names: &RwLock<Names>,
    counters: &Counters,
    started: Instant,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() + n > REQUEST_MAX {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, ctype, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => {
            let names = names
                .read()
                .map(|n| n.clone())
                .map_err(|_| std::io::Error::other("names poisoned"))?;
            let snap = Snapshot::take(
                &names,
                counters,
                started.elapsed().as_secs(),
                crate::port::tsc_hz(),
            );
            match encode(snap) {
                Ok(text) => ("200 OK", CONTENT_TYPE, text),
                Err(_) => (
                    "500 Internal Server Error",
                    "text/plain",
                    "encoding failed\n".into(),
                ),
            }
        }
        (b"GET" | b"HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "warden serves /metrics only\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    let body = if method == b"HEAD" {
        String::new()
    } else {
        body
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::DropReason;

    fn names() -> Names {
        Names {
            instance: "gw".into(),
            ports: vec!["uplink".into(), "w1".into()],
            vnis: vec![100],
            peers: vec![("10.0.0.2".into(), Some("n2".into()))],
            identities: Vec::new(),
            rules: vec!["shop#1".into(), "shop#2".into()],
            labels: Default::default(),
            identity: false,
        }
    }

    #[test]
    fn the_exposition_carries_the_same_numbers_as_the_snapshot() {
        let c = Counters::new(2, 1, 1, 1);
        let w = &c.workers[0];
        w.count_drop(DropReason::PolicyDenied);
        w.count_drop(DropReason::PolicyDenied);
        w.ports[1].rx_packets.add(7);
        w.policy.hit(Some(policy::RuleId(1)), false);
        w.policy.hit(None, true);
        let snap = Snapshot::take(&names(), &c, 5, 1_000_000);
        let text = encode(snap.clone()).expect("encodes");
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        has("# TYPE warden_drops counter");
        has(r#"warden_drops_total{reason="policy_denied"} 2"#);
        has(r#"warden_port_rx_packets_total{port="w1"} 7"#);
        has(r#"warden_policy_rule_hits_total{set="shop",rule="shop#2"} 1"#);
        has(r#"warden_policy_rule_hits_total{set="default",rule="default"} 1"#);
        has(r#"warden_policy_rule_would_deny_total{set="default",rule="default"} 1"#);
        has(r#"warden_peer_up{peer="10.0.0.2",name="n2"} 0"#);
        has(r#"warden_info{instance="gw",version="0.1.0"} 1"#);
        assert_eq!(text.lines().last(), Some("# EOF"));
        // Every drop reason the snapshot has is exported, with its count.
        for (reason, n) in &snap.drops {
            has(&format!("warden_drops_total{{reason=\"{reason}\"}} {n}"));
        }
    }
}
