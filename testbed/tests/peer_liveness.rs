//! Peer liveness: in the node lab (warden n1, kernel VTEP k1), k1's
//! underlay link is taken down; `warden stats` shows k1 `down` within the
//! stated detection time (`underlay::PEER_DETECTION_SECS`), warden logs the
//! change, and traffic toward k1 is counted as `peer_down`. With the link
//! back, k1 comes back `up`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{is_root, lab_up, warden_bin, Cleanup};
use dataplane::underlay::PEER_DETECTION_SECS;
use testbed::{netns, state};

fn stats(socket: &Path) -> serde_json::Value {
    let out = Command::new(warden_bin())
        .args(["stats", "--total", "--json", "-s"])
        .arg(socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn peer_state(s: &serde_json::Value) -> String {
    s["peers"]["10.0.0.11"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// Waits up to `limit` for k1 to be in `want`; returns how long it took.
fn wait_state(socket: &Path, want: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let s = stats(socket);
        if peer_state(&s) == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "peer k1 still {} after {:?}: {}",
            peer_state(&s),
            t.elapsed(),
            s["peers"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ping(prefix: &str, from: &str, to: &str, count: u32) -> bool {
    netns::exec_in(&state::ns_name(prefix, from), "ping")
        .args(["-c", &count.to_string(), "-i", "0.2", "-W", "1", "-q", to])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_peer_taken_down_is_reported_down_and_its_traffic_counted() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let prefix = format!("wpl{:05x}", std::process::id() & 0xfffff);
    let _cleanup = Cleanup(prefix.clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = lab_up(&root.join("examples/node.toml"), &prefix);
    let st = lab.state();
    let socket = st.dir.join("n1.sock");
    let log = st.dir.join("n1.log");

    assert!(ping(&prefix, "w1", "10.1.0.11", 3), "w1 cannot reach k1");
    wait_state(&socket, "up", Duration::from_secs(10));

    // k1's underlay link goes down.
    let k1 = state::ns_name(&prefix, "k1");
    netns::ip_in(&k1, ["link", "set", "eth0", "down"]).unwrap();
    let took = wait_state(
        &socket,
        "down",
        Duration::from_secs(PEER_DETECTION_SECS + 1),
    );
    eprintln!("k1 reported down after {took:?} (stated: within {PEER_DETECTION_SECS} s)");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("peer 10.0.0.11 (k1) is down"),
        "no log line in {}: {logged}",
        log.display()
    );

    // Traffic toward k1 is dropped and counted, not lost silently.
    let before = stats(&socket)["drops"]["peer_down"].as_u64().unwrap();
    assert!(!ping(&prefix, "w1", "10.1.0.11", 5));
    let after = stats(&socket);
    let dropped = after["drops"]["peer_down"].as_u64().unwrap() - before;
    assert!(
        dropped >= 3,
        "peer_down moved by {dropped}: {}",
        after["drops"]
    );
    assert!(after["drops_total"].as_u64().unwrap() >= dropped);

    // Back up: reported up again, traffic flows.
    netns::ip_in(&k1, ["link", "set", "eth0", "up"]).unwrap();
    wait_state(&socket, "up", Duration::from_secs(PEER_DETECTION_SECS + 5));
    assert!(
        ping(&prefix, "w1", "10.1.0.11", 3),
        "k1 unreachable after coming back"
    );
    let s = stats(&socket);
    assert!(s["peers"]["10.0.0.11"]["state_changes"].as_u64().unwrap() >= 3);
    drop(lab);
}
