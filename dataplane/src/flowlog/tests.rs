use super::*;
use crate::flows::{FlowEntry, Key, Origin, Verdict};
use overlay::{FlowKey, IpProtocol};

fn entry() -> FlowEntry {
    let key = Key {
        vni: 0,
        class: crate::flows::FlowClass::Ports,
        flow: FlowKey {
            src: "10.1.0.21".parse().unwrap(),
            dst: "10.1.0.23".parse().unwrap(),
            protocol: IpProtocol::TCP,
            src_port: 40000,
            dst_port: 5001,
        },
    };
    let mut e = FlowEntry::new(key, Origin::Peer(0), 3);
    e.verdict = Verdict::Allow;
    e.rule = Some(policy::RuleId(0));
    e.src_identity = identity::IdentityId(0xa);
    e.dst_identity = identity::IdentityId(0xb);
    e.source = crate::flows::IdentitySource::Header;
    e
}

fn event(kind: EventKind) -> FlowEvent {
    FlowEvent {
        kind,
        entry: entry(),
        request: LearnL7::None,
        l7_verdict: LastL7::None,
        reason: None,
        now: 5,
    }
}

fn names() -> Names {
    let mut labels = BTreeMap::new();
    labels.insert(
        "0000000a".to_string(),
        BTreeMap::from([("app".to_string(), "api".to_string())]),
    );
    Names {
        instance: "n2".into(),
        ports: vec!["uplink".into()],
        vnis: vec![100],
        peers: vec![("10.0.0.1".into(), None)],
        identities: vec![
            ("0000000a".into(), "spiffe://lab/api".into()),
            ("0000000b".into(), "spiffe://lab/db".into()),
        ],
        rules: vec!["payments#1".into()],
        labels,
        identity: true,
    }
}

#[test]
fn a_record_names_everything() {
    let rec = Record::of(&event(EventKind::Opened), &names(), SystemTime::UNIX_EPOCH);
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["time"], "1970-01-01T00:00:00.000Z");
    assert_eq!(json["event"], "opened");
    assert_eq!(json["node"], "n2");
    assert_eq!(json["vni"], 100);
    assert_eq!(json["protocol"], "tcp");
    assert_eq!(
        (json["src"].as_str(), json["dst_port"].as_u64()),
        (Some("10.1.0.21"), Some(5001))
    );
    assert_eq!(json["origin"], "peer 10.0.0.1");
    assert_eq!(json["src_identity"], "spiffe://lab/api");
    assert_eq!(json["src_labels"]["app"], "api");
    assert_eq!(json["identity_source"], "header");
    assert_eq!(json["dst_identity"], "spiffe://lab/db");
    assert_eq!(
        (json["set"].as_str(), json["rule"].as_str()),
        (Some("payments"), Some("payments#1"))
    );
    assert_eq!(json["verdict"], "allow");
    assert!(json.get("l7").is_none() && json.get("reason").is_none());
    let back: Record = serde_json::from_value(json).unwrap();
    assert_eq!(back, rec);
}

#[test]
fn the_budget_and_the_channel_bound_what_is_queued() {
    let (tx, rx) = crossbeam_channel::bounded(4);
    let mut log = FlowLogTx::new(tx, 6);
    for _ in 0..10 {
        log.emit(event(EventKind::Denied));
    }
    // 6 in the budget, of which 4 fit the channel.
    assert_eq!((log.sent, log.dropped), (4, 6));
    assert_eq!(rx.len(), 4);
    while rx.try_recv().is_ok() {}
    log.emit(event(EventKind::Denied));
    assert_eq!(log.sent, 4, "the second's budget is spent");
    log.refill();
    log.emit(event(EventKind::Denied));
    assert_eq!(log.sent, 5);
}

#[test]
fn rotation_keeps_the_disk_within_keep_plus_one_files() {
    let dir = std::env::temp_dir().join(format!("warden-flowlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("flows.jsonl");
    let mut w = Writer::open(&path, 4096, 2).unwrap();
    let line = "x".repeat(99);
    for _ in 0..1000 {
        w.write_line(&line).unwrap();
    }
    w.flush().unwrap();
    let mut total = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let len = entry.unwrap().metadata().unwrap().len();
        assert!(len <= 4096, "each file within max_bytes");
        total += len;
        files += 1;
    }
    assert_eq!(files, 3, "flows.jsonl, .1, .2");
    assert!(total <= 3 * 4096);
    // Whole lines only: every file ends a line.
    let text = std::fs::read_to_string(dir.join("flows.jsonl.1")).unwrap();
    assert!(text.lines().all(|l| l.len() == 99));
    std::fs::remove_dir_all(&dir).unwrap();
}
