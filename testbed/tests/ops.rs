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
