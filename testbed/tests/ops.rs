//! Operating warden in a running lab (issue 9): testbed/examples/policy.toml
//! with its checks run (allowed, denied and rejected flows), then:
//!
//! - a real Prometheus (Debian's `prometheus`) runs in n2's namespace and
//!   scrapes n2's `/metrics` every second: the target is up with no scrape
//!   error, and the counters it stored agree with `warden stats --json`
//!   (drops by reason and policy rule hits, which move only with new flows;
//!   read once the lab's traffic has stopped).
//!
//! Needs root, curl, prometheus and the release binaries (scripts/test
//! installs and builds them).

mod common;
use common::{is_root, lab_up, run_lab_checks, warden_bin, Cleanup};

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use testbed::checks::{counter, warden_stats};
use testbed::netns::{exec_in, which};
use testbed::state::ns_name;

/// A Prometheus query's single value, if it has one.
fn query(ns: &str, promql: &str) -> Option<f64> {
    let url = format!(
        "http://127.0.0.1:9090/api/v1/query?query={}",
        promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    );
    let out = exec_in(ns, "curl").args(["-sf", &url]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// The scrape target's health and last error.
fn target(ns: &str) -> Option<(String, String)> {
    let out = exec_in(ns, "curl")
        .args(["-sf", "http://127.0.0.1:9090/api/v1/targets"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let t = &v["data"]["activeTargets"][0];
    Some((
        t["health"].as_str()?.to_string(),
        t["lastError"].as_str()?.to_string(),
    ))
}

#[test]
fn prometheus_scrapes_a_lab_warden_and_agrees_with_warden_stats() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    if which("prometheus").is_none() {
        panic!("prometheus is not installed (scripts/install-deps.sh installs it)");
    }
    let p = format!("op{}", std::process::id() % 100_000);
    let _cleanup = Cleanup(p.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let running = lab_up(&file, &p);
    run_lab_checks(&running);
    let dir = running.state().dir.clone();
    let n2 = ns_name(&p, "n2");
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: warden\n    \
         static_configs:\n      - targets: [\"127.0.0.1:9464\"]\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prom = exec_in(&n2, "prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");

    // Up, scraped without error, and a scrape after the traffic stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health = None;
    while Instant::now() < deadline {
        health = target(&n2);
        if health.as_ref().is_some_and(|(h, _)| h == "up") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));
    let json = warden_stats(&warden_bin(), &dir.join("n2.sock")).unwrap_or_else(|e| panic!("{e}"));
    let stat = |path: &str| counter(&json, path).unwrap_or_else(|e| panic!("{e}")) as f64;
    let pairs = [
        (
            "drops.policy_denied",
            r#"warden_drops_total{reason="policy_denied"}"#,
        ),
        (
            "drops.policy_rejected",
            r#"warden_drops_total{reason="policy_rejected"}"#,
        ),
        (
            "policy.rules.payments#1.hits",
            r#"warden_policy_rule_hits_total{rule="payments#1"}"#,
        ),
        (
            "policy.rules.default.hits",
            r#"warden_policy_rule_hits_total{rule="default"}"#,
        ),
    ];
    let mut problems = Vec::new();
    for (path, promql) in pairs {
        let want = stat(path);
        let got = query(&n2, promql);
        eprintln!("{path} = {want}; prometheus {promql} = {got:?}");
        if got != Some(want) {
            problems.push(format!("{promql}: prometheus {got:?}, warden stats {want}"));
        }
    }
    let up = query(&n2, r#"up{job="warden"}"#);
    let _ = prom.kill();
    let _ = prom.wait();
    let (h, err) = health.unwrap_or_default();
    assert_eq!(
        (h.as_str(), err.as_str()),
        ("up", ""),
        "scrape target health"
    );
    assert_eq!(up, Some(1.0));
    assert!(
        stat("drops.policy_denied") > 0.0,
        "the lab's checks deny flows at n2"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    running.teardown().expect("teardown");
}

/// The records of a flow log file (and its rotated one), parsed.
fn records(path: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    for p in [Path::new(&rotated), path] {
        if let Ok(text) = std::fs::read_to_string(p) {
            out.extend(
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))),
            );
        }
    }
    out
}

/// n2's flow log (policy.toml: `[flow_log] path = "n2-flows.jsonl"`,
/// 64 KiB files, one rotated file kept, 200 events a second):
///
/// - after the lab's checks, a record of each test flow n2 decided, with
///   both identities: api -> db tcp/5001 opened (allowed, rule
///   payments#1, source identity from the header), api -> db tcp/5003
///   denied (`policy_denied`);
/// - `warden observe --verdict deny` prints the denied one;
/// - `warden capture --drops --reason policy_denied` while api knocks on
///   db:5003 three times: `tcpdump -r` reads the SYNs, each with its drop
///   reason as a pcapng comment; `warden capture --port w3` while api pings
///   db: the echo requests and replies;
/// - a flood of 6,000 denied connection attempts (api -> db tcp/5003, each
///   from its own port) in about a second: the log keeps within its rate
///   (events logged at most 200 a second plus one second's burst) and its
///   disk bound (two files of 64 KiB), the rest counted as
///   `flow_log.dropped`; and n2 still logs the flows that follow.
#[test]
fn the_flow_log_records_test_flows_and_holds_its_bounds_under_a_deny_flood() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let p = format!("fl{}", std::process::id() % 100_000);
    let _cleanup = Cleanup(p.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let running = lab_up(&file, &p);
    run_lab_checks(&running);
    let dir = running.state().dir.clone();
    let log = dir.join("n2-flows.jsonl");
    std::thread::sleep(Duration::from_millis(500));
    let recs = records(&log);
    let find = |event: &str, port: u64| {
        recs.iter()
            .find(|r| r["event"] == event && r["dst_port"] == port && r["src"] == "10.1.0.21")
            .unwrap_or_else(|| panic!("no {event} record for port {port} in {recs:#?}"))
            .clone()
    };
    let opened = find("opened", 5001);
    assert_eq!(opened["verdict"], "allow");
    assert_eq!(opened["rule"], "payments#1");
    assert_eq!(opened["src_identity"], "spiffe://lab/ns/payments/sa/api");
    assert_eq!(opened["src_labels"]["app"], "api");
    assert_eq!(opened["identity_source"], "header");
    assert_eq!(opened["dst_identity"], "spiffe://lab/ns/payments/sa/db");
    assert_eq!(opened["node"], "n2");
    let denied = find("denied", 5003);
    assert_eq!(denied["verdict"], "deny");
    assert_eq!(denied["reason"], "policy_denied");
    assert_eq!(denied["src_identity"], "spiffe://lab/ns/payments/sa/api");

    // `warden observe` from the start of the file, denied flows only.
    let out = std::process::Command::new(warden_bin())
        .args([
            "observe",
            "--since-start",
            "--verdict",
            "deny",
            "-n",
            "1",
            "--timeout",
            "5",
            "--file",
        ])
        .arg(&log)
        .output()
        .expect("warden observe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("denied") && text.contains(":5003") && text.contains("reason policy_denied"),
        "{text}"
    );

    // Capture: n2's drops for policy_denied while api knocks on db:5003,
    // and n2's port w3 while api pings db; both files read by tcpdump.
    let sock = dir.join("n2.sock");
    let drops_pcap = dir.join("drops.pcapng");
    let capture = |args: &[&str], file: &Path| {
        std::process::Command::new(warden_bin())
            .args(["capture", "-s"])
            .arg(&sock)
            .args(args)
            .arg("-w")
            .arg(file)
            .spawn()
            .expect("warden capture")
    };
    let cap = capture(
        &[
            "--drops",
            "--reason",
            "policy_denied",
            "-n",
            "3",
            "-t",
            "10",
        ],
        &drops_pcap,
    );
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let _ = exec_in(&ns_name(&p, "w1"), "timeout")
            .args(["1", "bash", "-c", "exec 3<>/dev/tcp/10.1.0.23/5003"])
            .status();
    }
    let out = cap.wait_with_output().expect("capture ends");
    assert!(out.status.success(), "capture failed");
    let read = |file: &Path| {
        let out = std::process::Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(file)
            .output()
            .expect("tcpdump -r");
        assert!(
            out.status.success(),
            "tcpdump -r {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = read(&drops_pcap);
    eprintln!("drops capture:\n{text}");
    let syns = text
        .lines()
        .filter(|l| l.contains("10.1.0.23.5003") && l.contains("[S]"))
        .count();
    assert!(syns >= 3, "the dropped SYNs are in the capture");
    let raw = std::fs::read(&drops_pcap).unwrap();
    assert!(
        raw.windows(b"policy_denied".len())
            .any(|w| w == b"policy_denied"),
        "each packet carries its drop reason as a comment"
    );
    let port_pcap = dir.join("w3.pcapng");
    let cap = capture(&["--port", "w3", "-n", "4", "-t", "10"], &port_pcap);
    std::thread::sleep(Duration::from_millis(300));
    let _ = exec_in(&ns_name(&p, "w1"), "ping")
        .args(["-c", "2", "-i", "0.2", "10.1.0.23"])
        .status();
    assert!(cap
        .wait_with_output()
        .expect("capture ends")
        .status
        .success());
    let text = read(&port_pcap);
    eprintln!("w3 capture:\n{text}");
    assert!(
        text.contains("ICMP echo request") && text.contains("ICMP echo reply"),
        "{text}"
    );

    // The flood.
    let stats = |path: &str| {
        let json = warden_stats(&warden_bin(), &sock).unwrap_or_else(|e| panic!("{e}"));
        counter(&json, path).unwrap_or_else(|e| panic!("{e}"))
    };
    let (events0, dropped0) = (stats("flow_log.events"), stats("flow_log.dropped"));
    let flood = r#"
import socket, time
t = time.time()
for i in range(6000):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("10.1.0.23", 5003))
    except BlockingIOError: pass
    s.close()
print(round(time.time() - t, 2))
"#;
    let began = Instant::now();
    let out = exec_in(&ns_name(&p, "w1"), "python3")
        .args(["-c", flood])
        .output()
        .expect("the flood");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1500));
    let secs = began.elapsed().as_secs_f64();
    let (events, dropped) = (
        stats("flow_log.events") - events0,
        stats("flow_log.dropped") - dropped0,
    );
    let denied_now = stats("drops.policy_denied");
    eprintln!(
        "flood: {} s sending; {events} events logged, {dropped} counted instead over {secs:.1} s; \
         policy_denied total {denied_now}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert!(dropped > 0, "the flood exceeded the budget: excess counted");
    let budget = (200.0 * (secs.ceil() + 1.0)) as u64;
    assert!(
        events <= budget,
        "{events} events logged in {secs:.1} s, budget {budget}"
    );
    let on_disk: u64 = [log.clone(), dir.join("n2-flows.jsonl.1")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    assert!(on_disk <= 2 * 65536, "{on_disk} bytes on disk");
    // After it: a new allowed flow is logged again.
    std::thread::sleep(Duration::from_millis(1200));
    let ok = exec_in(&ns_name(&p, "w1"), "bash")
        .args(["-c", "exec 3<>/dev/tcp/10.1.0.23/5001 || true"])
        .status();
    assert!(ok.is_ok());
    std::thread::sleep(Duration::from_millis(500));
    let last = records(&log);
    assert!(
        last.iter()
            .rev()
            .take(20)
            .any(|r| r["event"] == "opened" && r["dst_port"] == 5001),
        "the flow after the flood is logged"
    );
    running.teardown().expect("teardown");
}

/// `warden trace` on n2 of policy.toml after its checks:
///
/// - offline, three packets from n1 (VNI 100): api -> db tcp/5001 with
///   api's header: forward, allowed by payments#1, delivered on w3;
///   tcp/5003: dropped `policy_denied` by the default; a header asserting
///   db, which n1 may not assert: dropped `identity_not_authorized`;
/// - the live packets agree: a real connect to db:5003 is counted as
///   `policy_denied` at n2, and a real one to db:5001 opens a flow that n2
///   decided by payments#1 (its flow log says so);
/// - `--live` follows two real echo requests to db through n2's stages,
///   from decap to delivery on w3.
#[test]
fn trace_explains_verdicts_that_match_the_live_packets() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let p = format!("tr{}", std::process::id() % 100_000);
    let _cleanup = Cleanup(p.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let running = lab_up(&file, &p);
    run_lab_checks(&running);
    let dir = running.state().dir.clone();
    let sock = dir.join("n2.sock");
    let trace = |extra: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(warden_bin())
            .args(["trace", "--json", "-s"])
            .arg(&sock)
            .args([
                "--peer",
                "10.0.0.1",
                "--vni",
                "100",
                "--src",
                "10.1.0.21",
                "--dst",
                "10.1.0.23",
            ])
            .args(["--proto", "tcp", "--sport", "45000"])
            .args(extra)
            .output()
            .expect("warden trace");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("a JSON report")
    };
    let api = "spiffe://lab/ns/payments/sa/api";
    let allowed = trace(&["--dport", "5001", "--header", api]);
    eprintln!("{allowed:#}");
    assert_eq!(allowed["result"], "forward");
    assert_eq!(
        (allowed["verdict"].as_str(), allowed["rule"].as_str()),
        (Some("allow"), Some("payments#1"))
    );
    let text = allowed["steps"].to_string();
    assert!(
        text.contains("delivered on port w3") && text.contains(api),
        "{text}"
    );
    let denied = trace(&["--dport", "5003", "--header", api]);
    assert_eq!(denied["result"], "drop policy_denied");
    assert_eq!(denied["rule"], "default");
    let refused = trace(&[
        "--dport",
        "5001",
        "--header",
        "spiffe://lab/ns/payments/sa/db",
    ]);
    assert_eq!(refused["result"], "drop identity_not_authorized");

    // The live packets.
    let stat = |path: &str| {
        let json = warden_stats(&warden_bin(), &sock).unwrap_or_else(|e| panic!("{e}"));
        counter(&json, path).unwrap_or_else(|e| panic!("{e}"))
    };
    let before = stat("drops.policy_denied");
    let knock = |port: u16| {
        let _ = exec_in(&ns_name(&p, "w1"), "timeout")
            .args([
                "1",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/10.1.0.23/{port}"),
            ])
            .status();
    };
    knock(5003);
    assert!(
        stat("drops.policy_denied") > before,
        "the real SYN to 5003 was denied at n2"
    );
    knock(5001);
    std::thread::sleep(Duration::from_millis(500));
    let log = std::fs::read_to_string(dir.join("n2-flows.jsonl")).unwrap_or_default();
    assert!(
        log.lines().rev().any(|l| l.contains("\"dst_port\":5001")
            && l.contains("\"event\":\"opened\"")
            && l.contains("\"rule\":\"payments#1\"")),
        "n2 decided the real flow to 5001 by payments#1, as traced"
    );

    // Live: two echo requests to db.
    let live = std::process::Command::new(warden_bin())
        .args([
            "trace",
            "--live",
            "--json",
            "--dst",
            "10.1.0.23",
            "--proto",
            "icmp",
            "-n",
            "2",
            "-t",
            "15",
            "-s",
        ])
        .arg(&sock)
        .stdout(Stdio::piped())
        .spawn()
        .expect("warden trace --live");
    std::thread::sleep(Duration::from_millis(500));
    let _ = exec_in(&ns_name(&p, "w1"), "ping")
        .args(["-c", "2", "-i", "0.2", "10.1.0.23"])
        .status();
    let out = live.wait_with_output().expect("live trace ends");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    eprintln!("{lines:#?}");
    assert_eq!(lines.len(), 2, "two packets traced");
    for l in &lines {
        assert!(
            l["packet"]
                .as_str()
                .is_some_and(|p| p.starts_with("icmp 10.1.0.21")),
            "{l}"
        );
        let stages = l["stages"].to_string();
        for s in ["decap", "classify", "switch", "deliver on port w3"] {
            assert!(stages.contains(s), "no {s:?} in {stages}");
        }
    }
    running.teardown().expect("teardown");
}
