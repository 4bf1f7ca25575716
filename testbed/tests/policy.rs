//! The policy engine in running labs (issue 7):
//!
//! - testbed/examples/policy.toml, every check: allowed TCP (byte-exact),
//!   UDP and ping; the same pair on another port denied at the
//!   destination's warden; a flow denied at its source's warden (egress);
//!   a rejected connect failing fast with "connection refused"; a routed
//!   flow admitted and one denied at the gateway; a monitor set forwarding
//!   what it would deny. Beside the checks, a capture on the underlay
//!   switch's port of node n1 shows that no packet of web (whose flows n1
//!   denies or rejects at egress) ever left n1, while api's did.
//! - The learn round trip (tests/fixtures/policy-learn.toml): traffic under
//!   `learn`, `warden policy learned` from each warden, the proposals
//!   loaded in `enforce`, the same traffic passes and a new flow is denied
//!   and counted.
//!
//! Needs root, tcpdump and the release binaries (scripts/test builds them).

mod common;
use common::{is_root, lab_up as up, run_lab_checks as run_checks, warden_bin, Cleanup};

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testbed::inject_attacks::Capture;
use testbed::lab::RunningLab;
use testbed::state::ns_name;

fn can_run() -> bool {
    if !is_root() {
        eprintln!("skipping: needs root");
        return false;
    }
    true
}

fn prefix(tag: &str) -> String {
    format!("pl{tag}{}", std::process::id() % 100_000)
}

/// The inner IPv4 (src, dst) of a VXLAN frame, if it is one.
fn inner_ipv4(f: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if f.get(12..14)? != [0x08, 0x00] || *f.get(23)? != 17 {
        return None;
    }
    let ihl = usize::from(f.get(14)? & 0x0f) * 4;
    let udp = 14 + ihl;
    if f.get(udp + 2..udp + 4)? != 4789u16.to_be_bytes() {
        return None;
    }
    let inner = udp + 8 + 8;
    if f.get(inner + 12..inner + 14)? != [0x08, 0x00] {
        return None;
    }
    let ip = inner + 14;
    let a = |o: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = f.get(ip + o..ip + o + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    Some((a(12)?, a(16)?))
}

#[test]
fn policy_lab_passes_and_egress_denied_flows_never_reach_the_underlay() {
    if !can_run() {
        return;
    }
    let p = prefix("x");
    let _cleanup = Cleanup(p.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let running = up(&file, &p);
    // The switch side of n1's underlay veth sees everything n1 sends
    // (warden transmits past the qdisc, so a capture inside n1 would not).
    let pcap = running.state().dir.join("n1-underlay.pcap");
    let cap =
        Capture::start(&ns_name(&p, "underlay"), "n1-eth0", pcap).unwrap_or_else(|e| panic!("{e}"));
    run_checks(&running);
    std::thread::sleep(Duration::from_millis(500));
    let api = Ipv4Addr::new(10, 1, 0, 21);
    let web = Ipv4Addr::new(10, 1, 0, 22);
    let from = |who: Ipv4Addr| cap.count(|f| inner_ipv4(f).is_some_and(|(s, _)| s == who));
    assert!(from(api) > 0, "the capture sees what n1 forwards");
    assert_eq!(
        from(web),
        0,
        "web's flows (denied or rejected at n1) never reached the underlay"
    );
    drop(cap);
    running.teardown().expect("teardown");
}

/// `warden policy learned` against warden `name` of a running lab.
fn learned(running: &RunningLab, name: &str) -> String {
    let dir = running.state().dir;
    let out = Command::new(warden_bin())
        .args(["policy", "learned", "-c"])
        .arg(dir.join(format!("{name}.toml")))
        .output()
        .expect("run warden policy learned");
    assert!(
        out.status.success(),
        "warden policy learned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A proposal (instance-config TOML) as tables of a lab's `[[warden]]`.
fn in_lab(proposal: &str) -> String {
    proposal
        .replace("[[policy.set]]", "  [[warden.config.policy.set]]")
        .replace("[[policy.set.rule]]", "  [[warden.config.policy.set.rule]]")
}

#[test]
fn learn_proposal_in_enforce_admits_the_learned_traffic_and_denies_the_rest() {
    if !can_run() {
        return;
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy-learn.toml");
    let text = std::fs::read_to_string(&file).expect("fixture");

    // 1. Learn.
    let p = prefix("l");
    let _cleanup = Cleanup(p.clone());
    let running = up(&file, &p);
    run_checks(&running);
    // The learn tables are published once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let n1 = learned(&running, "n1");
    let n2 = learned(&running, "n2");
    running.teardown().expect("teardown");
    for (who, proposal) in [("n1", &n1), ("n2", &n2)] {
        assert!(
            proposal.contains("[[policy.set.rule]]") && !proposal.contains("WARNING"),
            "{who} proposed:\n{proposal}"
        );
    }
    eprintln!("n1 proposed:\n{n1}\nn2 proposed:\n{n2}");

    // 2. The proposals in enforce: the same checks, plus a flow never seen.
    let enforce = text
        .replace("default = \"learn\"", "default = \"enforce\"")
        .replace("  # @n1-learned\n", &in_lab(&n1))
        .replace("  # @n2-learned\n", &in_lab(&n2))
        + r#"
[[check]]
name = "web -> db tcp/5001 was never seen: denied"
kind = "command"
host = "w2"
run = "timeout 3 bash -c 'exec 3<>/dev/tcp/10.1.0.23/5001'"
expect_status = 124

[[check]]
name = "the new flow is counted as denied, nothing else is"
kind = "stats"
warden = "n1"
expect = ["drops.policy_denied >= 1", "drops.policy_responder_denied == 0", "policy.would_deny == 0"]

[[check]]
name = "n2 denied nothing"
kind = "stats"
warden = "n2"
expect = ["drops.policy_denied == 0"]
"#;
    let enforce_file = std::env::temp_dir().join(format!("{p}-enforce.toml"));
    std::fs::write(&enforce_file, &enforce).expect("write");
    let q = prefix("e");
    let _cleanup2 = Cleanup(q.clone());
    let running = up(&enforce_file, &q);
    run_checks(&running);
    running.teardown().expect("teardown");
    let _ = std::fs::remove_file(&enforce_file);
}
