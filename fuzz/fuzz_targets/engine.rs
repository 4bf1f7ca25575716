//! The whole engine, identity on, over in-memory ports: one underlay port
//! (a plain VTEP peer and a warden peer behind it), two access ports with
//! bound workloads. Built once per process. Each input is one frame: the
//! first byte picks where it enters (see `Entry`), the rest is the inner
//! frame (or, raw on the underlay, the whole frame). Checks: no panic;
//! the port received it (buffers come back to the pool: a leak would
//! empty the pool and stop reception) and no `pool_empty` drop; every frame
//! an access port gets is ARP, IPv4 or IPv6 under at most two VLAN tags, as
//! overlay's views read it. `WARDEN_FUZZ_TRACE=1` prints, per input, where
//! it entered, the drop reasons it hit and what came out.
#![no_main]

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::counters::{Counters, DropReason};
use dataplane::engine::Engine;
use dataplane::port::{MemoryPort, Port};
use libfuzzer_sys::fuzz_target;
use overlay::{arp, ethernet, ipv4, ipv6, vlan, EtherType, Gbp, MacAddr, OuterParams};
use overlay::{OuterTemplate, Vni, OUTER_LEN};

const UNDERLAY_MAC: MacAddr = MacAddr([2, 0x77, 0, 0, 0, 1]);
const NEXT_HOP_MAC: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 2]);
const UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const WARDEN_PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const VTEP_PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);

const CONFIG: &str = r#"
[instance]
name = "fuzz"
control_socket = "/nonexistent/warden-fuzz.sock"

[underlay]
port = "uplink"
address = "10.0.0.1/24"

[identity]
warden_id = "node-1"
secret_file = "@SECRET@"
restamp_secs = 5

[[identity.document]]
name = "api"
[[identity.document]]
name = "db"
[[identity.document]]
name = "batch"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "mem0"

[[port]]
name = "w1"
backend = "tap"
interface = "w1"
vni = 100

[[port]]
name = "w2"
backend = "tap"
interface = "w2"
vni = 100

[[vni]]
id = 100
gateway = "10.1.0.1/24"
gateway_mac = "02:00:00:00:01:01"

[[vni]]
id = 200
gateway = "10.2.0.1/24"
gateway_mac = "02:00:00:00:02:01"

[[peer]]
address = "10.0.0.2"
vnis = [100, 200]
kind = "warden"
warden_id = "node-2"
identities = ["batch", "db"]

[[peer]]
address = "10.0.0.11"
vnis = [100, 200]
gbp = [{ group = 100, identity = "batch" }]

[[fdb]]
vni = 100
mac = "02:00:00:00:01:33"
peer = "10.0.0.2"

[[fdb]]
vni = 200
mac = "02:00:00:00:02:44"
peer = "10.0.0.11"

[[neighbor]]
vni = 200
ip = "10.2.0.44"
mac = "02:00:00:00:02:44"

[[workload]]
port = "w1"
mac = "02:00:00:00:01:21"
ip = "10.1.0.21"
identity = "api"

[[workload]]
port = "w2"
mac = "02:00:00:00:01:22"
ip = "10.1.0.22"
identity = "db"

[[identity_map]]
peer = "10.0.0.11"
cidr = "10.2.0.0/24"
identity = "batch"

# Decided at ingress (db, api), at egress (toward batch and any other
# remote: provisional, decided again at the reply) and at the gateway;
# batch's TCP toward api is rejected (an RST goes back).
[[policy.set]]
name = "fuzz"

# L7 first (the inspect stage: detection, HTTP, TLS, DNS, holding, cuts).
[[policy.set.rule]]
from = ["api", "unauthenticated"]
to = ["db"]
proto = "tcp"
ports = [80]
action = "allow"
http = [{ methods = ["GET"], paths = ["/a/**"] }]

[[policy.set.rule]]
from = ["api", "unauthenticated"]
to = ["db"]
proto = "tcp"
ports = [443]
action = "allow"
tls = [{ server_names = ["*.x.example"] }]

[[policy.set.rule]]
from = ["api", "unauthenticated"]
to = ["db"]
proto = "udp"
ports = [53]
action = "allow"
dns = [{ names = ["*.x.example"] }]

[[policy.set.rule]]
from = ["api", "unauthenticated"]
to = ["db"]
proto = "tcp"
ports = [80, 443]
action = "reject"

[[policy.set.rule]]
from = ["api", "batch", "unauthenticated"]
to = ["db"]
action = "allow"

[[policy.set.rule]]
from = ["db", "unauthenticated"]
to = ["api"]
action = "allow"

[[policy.set.rule]]
from = ["batch"]
to = ["api"]
proto = "tcp"
action = "reject"

[[policy.set.rule]]
from = ["api", "db"]
to = ["batch"]
action = "allow"
"#;

/// Port indices, in the config's order.
const UPLINK: usize = 0;
const W1: usize = 1;
const W2: usize = 2;

struct World {
    engine: Engine,
    /// Far ends: the underlay wire and the two workloads.
    wire: MemoryPort,
    w1: MemoryPort,
    w2: MemoryPort,
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(world());
}

fn world() -> World {
    let secret =
        std::env::temp_dir().join(format!("warden-fuzz-engine-{}.key", std::process::id()));
    std::fs::write(&secret, [0x5a; 32]).expect("write the pair secret");
    let text = CONFIG.replace("@SECRET@", &secret.display().to_string());
    let cfg = config::parse_warden(&text, "fuzz-engine.toml").expect("fuzz config is valid");
    let (mut up, wire) = MemoryPort::pair("mem0", "wire", 1024);
    up.set_mac(UNDERLAY_MAC);
    let (a1, w1) = MemoryPort::pair("w1", "api", 1024);
    let (a2, w2) = MemoryPort::pair("w2", "db", 1024);
    let counters = Arc::new(Counters::new(3, cfg.vnis.len(), cfg.peers.len(), 1));
    let ports: Vec<Box<dyn Port>> = vec![Box::new(up), Box::new(a1), Box::new(a2)];
    let engine = Engine::new(&cfg, ports, counters).expect("engine builds");
    // The secret is read while the tables are built.
    let _ = std::fs::remove_file(&secret);
    let mut w = World {
        engine,
        wire,
        w1,
        w2,
    };
    resolve_peers(&mut w);
    w
}

/// Answer the host stack's ARP for each peer until every peer has a next
/// hop (benches/src/lib.rs does the same).
fn resolve_peers(w: &mut World) {
    for _ in 0..600 {
        w.engine.force_housekeeping();
        let mut requests = Vec::new();
        w.wire.recv_all(|f| {
            if let Some(ip) = arp_request_target(f) {
                requests.push(ip);
            }
        });
        for ip in requests {
            w.wire.send(&arp_reply(ip));
        }
        w.engine.poll();
        if (0..w.engine.peers().len()).all(|r| w.engine.peer_next_hop(r).is_some()) {
            w.wire.recv_all(|_| {});
            w.w1.recv_all(|_| {});
            w.w2.recv_all(|_| {});
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("fuzz fixture: peers did not resolve: {:?}", w.engine.host());
}

fn arp_request_target(f: &[u8]) -> Option<Ipv4Addr> {
    let eth = ethernet::Frame::new_checked(f).ok()?;
    if eth.ethertype() != EtherType::ARP {
        return None;
    }
    let a = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).ok()?).ok()?;
    (a.operation == arp::Operation::REQUEST).then_some(a.target_protocol_addr)
}

fn arp_reply(from: Ipv4Addr) -> Vec<u8> {
    let repr = arp::Repr {
        operation: arp::Operation::REPLY,
        source_hardware_addr: NEXT_HOP_MAC,
        source_protocol_addr: from,
        target_hardware_addr: UNDERLAY_MAC,
        target_protocol_addr: UNDERLAY_IP,
    };
    let mut buf = vec![0u8; ethernet::HEADER_LEN + repr.buffer_len()];
    let mut eth = ethernet::Frame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(UNDERLAY_MAC);
    eth.set_src_addr(NEXT_HOP_MAC);
    eth.set_ethertype(EtherType::ARP);
    repr.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()))
        .expect("buffer sized by buffer_len");
    buf
}

/// Where an input enters: `data[0] % 8`.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// VXLAN from a peer in a VNI, with an optional GBP group.
    Vxlan {
        from: Ipv4Addr,
        vni: u32,
        gbp: Option<u16>,
    },
    /// The rest is the whole underlay frame.
    Raw,
    /// An access port (index into the engine's ports).
    Access(usize),
}

fn entry(b: u8) -> Entry {
    let vxlan = |from, vni, gbp| Entry::Vxlan { from, vni, gbp };
    match b % 8 {
        0 => vxlan(VTEP_PEER, 100, None),
        1 => vxlan(VTEP_PEER, 200, None),
        2 => vxlan(WARDEN_PEER, 100, None),
        3 => vxlan(WARDEN_PEER, 200, None),
        4 => Entry::Raw,
        5 => Entry::Access(W1),
        6 => Entry::Access(W2),
        // GBP from the VTEP: the high bits pick a trusted or unknown group.
        _ => vxlan(VTEP_PEER, 100, Some(if b & 0x80 == 0 { 100 } else { 7 })),
    }
}

fn vxlan_frame(from: Ipv4Addr, vni: u32, gbp: Option<u16>, inner: &[u8]) -> Vec<u8> {
    let t = OuterTemplate::new(&OuterParams {
        src_mac: NEXT_HOP_MAC,
        dst_mac: UNDERLAY_MAC,
        src_ip: from,
        dst_ip: UNDERLAY_IP,
        vni: Vni::new(vni).expect("valid VNI"),
        dst_port: 4789,
        ttl: 64,
        gbp: gbp.map(|group| Gbp {
            dont_learn: false,
            policy_applied: false,
            group,
        }),
    });
    let mut f = vec![0u8; OUTER_LEN + inner.len()];
    t.write_into(&mut f, inner.len(), 50000)
        .expect("room for the outer headers");
    f[OUTER_LEN..].copy_from_slice(inner);
    f
}

/// What may leave an access port with identity on: ARP, IPv4 or IPv6 (as
/// overlay's views check them) under at most two tags. The engine's parser
/// takes 0x9100 as a tag too, so this walk does.
fn check_access_output(port: usize, f: &[u8]) {
    let eth = ethernet::Frame::new_checked(f)
        .unwrap_or_else(|e| panic!("port {port}: output is no Ethernet frame ({e:?}): {f:02x?}"));
    let mut ethertype = eth.ethertype();
    let mut off = ethernet::HEADER_LEN;
    let mut tags = 0;
    while ethertype.is_vlan() || ethertype == EtherType(0x9100) {
        assert!(
            tags < vlan::MAX_TAGS,
            "port {port}: output with more than {} tags: {f:02x?}",
            vlan::MAX_TAGS
        );
        let tag = vlan::VlanTag::new_checked(&f[off..])
            .unwrap_or_else(|e| panic!("port {port}: output cut in a tag ({e:?}): {f:02x?}"));
        ethertype = tag.ethertype();
        off += vlan::TAG_LEN;
        tags += 1;
    }
    let l3 = &f[off..];
    match ethertype {
        EtherType::ARP => {
            let p = arp::Packet::new_checked(l3)
                .unwrap_or_else(|e| panic!("port {port}: bad ARP out ({e:?}): {f:02x?}"));
            arp::Repr::parse(&p)
                .unwrap_or_else(|e| panic!("port {port}: bad ARP out ({e:?}): {f:02x?}"));
        }
        EtherType::IPV4 => {
            ipv4::Packet::new_checked(l3)
                .unwrap_or_else(|e| panic!("port {port}: bad IPv4 out ({e:?}): {f:02x?}"));
        }
        EtherType::IPV6 => {
            ipv6::Packet::new_checked(l3)
                .unwrap_or_else(|e| panic!("port {port}: bad IPv6 out ({e:?}): {f:02x?}"));
        }
        other => panic!("port {port}: EtherType {other:?} out of an access port: {f:02x?}"),
    }
}

fn run(w: &mut World, data: &[u8]) {
    let Some((&sel, inner)) = data.split_first() else {
        return;
    };
    let e = entry(sel);
    let (port, sent) = match e {
        Entry::Vxlan { from, vni, gbp } => {
            (UPLINK, w.wire.send(&vxlan_frame(from, vni, gbp, inner)))
        }
        Entry::Raw => (UPLINK, w.wire.send(inner)),
        Entry::Access(W1) => (W1, w.w1.send(inner)),
        Entry::Access(_) => (W2, w.w2.send(inner)),
    };
    let c = w.engine.counters();
    let rx_before = c.ports[port].rx_packets.get();
    let drops_before: Vec<u64> = c.drops.iter().map(|d| d.get()).collect();
    for _ in 0..8 {
        if w.engine.poll() == 0 {
            break;
        }
    }
    w.engine.housekeeping();
    let c = w.engine.counters();
    if sent {
        // Frames longer than a buffer are refused by the ring itself.
        assert_eq!(
            c.ports[port].rx_packets.get(),
            rx_before + 1,
            "{e:?}: the engine did not take the frame (pool leaked dry?)"
        );
    }
    assert_eq!(
        c.drops[DropReason::PoolEmpty as usize].get(),
        0,
        "{e:?}: the pool ran dry (a buffer leaked)"
    );
    let trace = std::env::var_os("WARDEN_FUZZ_TRACE").is_some();
    if trace {
        let drops: Vec<&str> = DropReason::ALL
            .iter()
            .filter(|r| c.drops[**r as usize].get() > drops_before[**r as usize])
            .map(|r| r.name())
            .collect();
        eprintln!("{e:?}: {} bytes in, drops {drops:?}", inner.len());
    }
    let out = |name: &str, n: usize| {
        if trace && n > 0 {
            eprintln!("  {n} frame(s) out of {name}");
        }
    };
    out("the underlay", w.wire.recv_all(|_| {}));
    out("w1", w.w1.recv_all(|f| check_access_output(W1, f)));
    out("w2", w.w2.recv_all(|f| check_access_output(W2, f)));
}

fuzz_target!(|data: &[u8]| {
    WORLD.with(|w| run(&mut w.borrow_mut(), data));
});
