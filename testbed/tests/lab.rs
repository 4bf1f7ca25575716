//! warden-lab end to end: labs come up, checks pass or fail as they should,
//! and nothing is left behind, also after `kill -9`. Needs root; each test
//! uses its own namespace prefix so that the tests run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testbed::netns;
use testbed::state::{self, RunState};

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Root and the tools the lab needs, or a note why the test does nothing.
fn can_run() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    for tool in ["ethtool", "ping"] {
        assert!(
            netns::which(tool).is_some(),
            "{tool} is missing: run scripts/install-deps.sh"
        );
    }
    true
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A prefix unique to this process and test.
fn prefix(tag: &str) -> String {
    format!("wt{}{tag}", std::process::id() % 1_000_000)
}

fn lab(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run warden-lab")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn namespaces_with(prefix: &str) -> Vec<String> {
    netns::list_netns()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

fn state_dirs_with(prefix: &str) -> Vec<PathBuf> {
    state::base_dirs()
        .iter()
        .map(|b| b.join(prefix))
        .filter(|d| d.exists())
        .collect()
}

fn assert_gone(prefix: &str) {
    assert_eq!(
        namespaces_with(prefix),
        Vec::<String>::new(),
        "namespaces left"
    );
    assert_eq!(state_dirs_with(prefix), Vec::<PathBuf>::new(), "state left");
}

/// Removes whatever a failed test left, by prefix.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !namespaces_with(&self.0).is_empty() || !state_dirs_with(&self.0).is_empty() {
            let _ = lab(&["down", "--prefix", &self.0]);
            for ns in namespaces_with(&self.0) {
                let _ = netns::cleanup_netns(&ns, &[]);
            }
        }
    }
}

fn load_state(prefix: &str) -> RunState {
    let dir = state_dirs_with(prefix).pop().expect("state directory");
    RunState::load(&dir.join(state::STATE_FILE)).unwrap()
}

fn alive(pid: u32) -> bool {
    testbed::process::Pid::current(pid).is_some()
}

#[test]
fn kernel_vteps_pass_ping_and_tcp_then_nothing_remains() {
    if !can_run() {
        return;
    }
    let p = prefix("a");
    let _cleanup = Cleanup(p.clone());
    let file = fixture("kernel-pair.toml");
    let out = lab(&["run", "--prefix", &p, file.to_str().unwrap()]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("[5/7] tcp k1 -> k2 10.9.0.12:5001 4194304 bytes ... ok"),
        "{all}"
    );
    assert!(all.contains("7 passed, 0 failed"), "{all}");
    assert_gone(&p);
}

#[test]
fn down_after_up_removes_namespaces_links_and_stray_processes() {
    if !can_run() {
        return;
    }
    let p = prefix("b");
    let _cleanup = Cleanup(p.clone());
    let file = fixture("kernel-pair.toml");
    let out = lab(&["up", "--prefix", &p, file.to_str().unwrap()]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("ip netns exec {p}-k1 bash")), "{all}");
    let mut nss = namespaces_with(&p);
    nss.sort();
    assert_eq!(
        nss,
        [
            format!("{p}-k1"),
            format!("{p}-k2"),
            format!("{p}-underlay")
        ]
    );
    assert!(netns::link_exists(&format!("{p}-k2"), "tp0"));
    assert!(netns::link_exists(&format!("{p}-k1"), "vx100"));
    let st = load_state(&p);
    assert!(st.links.iter().any(|l| l.name == "tp0"));
    // A process the lab does not know about, which would keep a namespace
    // alive after `ip netns del`.
    let mut stray = netns::exec_in(&format!("{p}-k2"), "sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let stray_pid = stray.id();
    let reaper = std::thread::spawn(move || stray.wait());

    let out = lab(&["down", "--prefix", &p]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("removed {p}")));
    let status = reaper.join().unwrap().unwrap();
    assert!(!status.success(), "stray process was not killed");
    assert!(!alive(stray_pid));
    assert_gone(&p);

    // Nothing left to remove the second time.
    let out = lab(&["down", "--prefix", &p]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn down_after_kill_9_of_warden_lab_removes_everything() {
    if !can_run() {
        return;
    }
    let p = prefix("c");
    let _cleanup = Cleanup(p.clone());
    let file = fixture("long-check.toml");
    let mut run = Command::new(BIN)
        .args(["run", "--prefix", &p, file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the check's process to be recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let check_pid = loop {
        assert!(Instant::now() < deadline, "check never started");
        if let Some(dir) = state_dirs_with(&p).pop() {
            if let Ok(st) = RunState::load(&dir.join(state::STATE_FILE)) {
                if let Some(proc_) = st.processes.iter().find(|r| r.what.starts_with("command")) {
                    break proc_.pid.pid;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ns = format!("{p}-h1");
    let in_ns = netns::netns_pids(&ns).unwrap();
    assert!(in_ns.contains(&check_pid), "{in_ns:?} lacks {check_pid}");
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(alive(check_pid), "check died with warden-lab");
    assert!(netns::link_exists(&ns, "tp0"));

    // `down FILE` finds the run by its lab file.
    let out = lab(&["down", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(check_pid));
    for pid in in_ns {
        assert!(!alive(pid), "{pid} survived");
    }
    assert_gone(&p);
}

#[test]
fn failing_checks_fail_the_run_and_still_tear_down() {
    if !can_run() {
        return;
    }
    let p = prefix("d");
    let _cleanup = Cleanup(p.clone());
    let file = fixture("failing.toml");
    let out = lab(&["run", "--prefix", &p, file.to_str().unwrap()]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("[1/4] reachable: ping h1 -> 10.0.0.2 x1 ... ok"),
        "{all}"
    );
    assert!(
        all.contains("[2/4] nobody there: ping h1 -> 10.0.0.99 x1 ... FAILED"),
        "{all}"
    );
    assert!(all.contains("exit status: 3 (expected exit 0)"), "{all}");
    assert!(all.contains("some output"), "{all}");
    assert!(all.contains("[4/4] no listener"), "{all}");
    assert!(all.contains("1 passed, 3 failed"), "{all}");
    assert_gone(&p);
}

#[test]
fn invalid_lab_file_is_reported_with_position_and_creates_nothing() {
    if !can_run() {
        return;
    }
    let p = prefix("e");
    let _cleanup = Cleanup(p.clone());
    let dir = std::env::temp_dir().join(format!("wl-bad-{p}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[lab]\nname = \"bad\"\n\n[[host]]\nname = \"h1\"\n  [[host.interface]]\n  name = \"eth0\"\n  switch = \"nowhere\"\n",
    )
    .unwrap();
    let out = lab(&["run", "--prefix", &p, file.to_str().unwrap()]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("bad.toml:8:"), "{all}");
    assert_gone(&p);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn prefix_in_use_is_refused() {
    if !can_run() {
        return;
    }
    let p = prefix("f");
    let _cleanup = Cleanup(p.clone());
    let ns = netns::NetNs::create(&format!("{p}-x")).unwrap();
    let out = lab(&[
        "up",
        "--prefix",
        &p,
        fixture("failing.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("in use"), "{}", text(&out));
    // The existing namespace is not ours to remove.
    assert!(netns::netns_exists(ns.name()));
    assert!(state_dirs_with(&p).is_empty());
    ns.cleanup().unwrap();
}

fn fake_warden() -> String {
    fixture("fake-warden.sh").to_str().unwrap().to_string()
}

fn warden_pid(prefix: &str) -> u32 {
    let st = load_state(prefix);
    st.processes
        .iter()
        .find(|p| p.what == "warden gw")
        .map(|p| p.pid.pid)
        .expect("warden recorded")
}

#[test]
fn warden_runs_in_its_namespace_and_stats_checks_read_it() {
    if !can_run() {
        return;
    }
    let p = prefix("g");
    let _cleanup = Cleanup(p.clone());
    let file = fixture("fake-warden.toml");
    let out = lab(&[
        "run",
        "--prefix",
        &p,
        "--warden",
        &fake_warden(),
        file.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("... ok (0.0 s, routed_packets = 7, vni.300.rx_decap_packets = 3, drops.not_a_peer = 0)"),
        "{all}"
    );
    assert!(all.contains("routed_packets > 100: value is 7"), "{all}");
    // The log tail of a failed run shows where the warden ran.
    assert!(all.contains(&format!("in netns {p}-gw")), "{all}");
    assert!(all.contains("1 passed, 1 failed"), "{all}");
    assert_gone(&p);
}

#[test]
fn warden_that_exits_fails_up_with_its_log_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let p = prefix("h");
    let _cleanup = Cleanup(p.clone());
    let file = fixture("fake-warden.toml");
    let out = Command::new(BIN)
        .args(["up", "--prefix", &p, "--warden", &fake_warden()])
        .arg(&file)
        .env("FAKE_WARDEN_MODE", "crash")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("warden gw did not become ready: it exited"),
        "{all}"
    );
    assert!(all.contains("cannot open port uplink: boom"), "{all}");
    assert_gone(&p);
}

#[test]
fn down_after_kill_9_of_a_warden_removes_everything() {
    if !can_run() {
        return;
    }
    let p = prefix("i");
    let _cleanup = Cleanup(p.clone());
    let warden = real_warden();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway.toml");
    let out = lab(&[
        "up",
        "--prefix",
        &p,
        "--warden",
        warden.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let pid = warden_pid(&p);
    assert!(alive(pid));
    assert!(netns::netns_pids(&format!("{p}-gw"))
        .unwrap()
        .contains(&pid));
    testbed::process::Pid::current(pid)
        .unwrap()
        .signal(testbed::Signal::Kill);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid));
    assert!(netns::link_exists(&format!("{p}-w1"), "wl0"));
    let out = lab(&["down", "--prefix", &p]);
    assert!(out.status.success(), "{}", text(&out));
    assert_gone(&p);
    // Nothing in the root namespace carries the prefix either.
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&p));
}

/// The warden binary built next to warden-lab (scripts/test builds both).
fn real_warden() -> PathBuf {
    let warden = Path::new(BIN).with_file_name("warden");
    assert!(
        warden.is_file(),
        "no {}: build it first (`cargo build --release -p dataplane --bins`, as scripts/test does)",
        warden.display()
    );
    warden
}

fn run_example(name: &str, tag: &str) {
    if !can_run() {
        return;
    }
    let warden = real_warden();
    let p = prefix(tag);
    let _cleanup = Cleanup(p.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let out = lab(&[
        "run",
        "--prefix",
        &p,
        "--warden",
        warden.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(" passed, 0 failed"), "{all}");
    assert_gone(&p);
}

#[test]
fn example_node_lab_passes_with_warden() {
    run_example("node.toml", "n");
}

#[test]
fn example_identity_lab_passes_with_warden() {
    run_example("identity.toml", "y");
}

#[test]
fn example_gateway_lab_passes_with_warden() {
    run_example("gateway.toml", "w");
}

/// The default gateway lab with warden's uplink on AF_XDP instead of
/// AF_PACKET: ping and the byte-exact TCP transfers through it pass.
#[test]
fn gateway_lab_passes_with_an_af_xdp_uplink() {
    if !can_run() {
        return;
    }
    let warden = real_warden();
    let p = prefix("x");
    let _cleanup = Cleanup(p.clone());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway.toml");
    let text_in = std::fs::read_to_string(example).unwrap();
    let from = "backend = \"af_packet\"\n  interface = \"eth0\"";
    assert!(text_in.contains(from), "the example's uplink changed");
    let lab_text = text_in.replacen(from, "backend = \"af_xdp\"\n  interface = \"eth0\"", 1);
    let file = std::env::temp_dir().join(format!("{p}-gateway-af-xdp.toml"));
    std::fs::write(&file, lab_text).unwrap();
    let out = lab(&[
        "run",
        "--prefix",
        &p,
        "--warden",
        warden.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&file);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(" passed, 0 failed"), "{all}");
    assert_gone(&p);
}
