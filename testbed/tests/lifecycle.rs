//! Lifecycle and CLI safety of `warden` and `warden-lab` (issue 9, item 7):
//! a closed stdout is a quiet exit; idle control clients delay nobody; a
//! second instance on the same interface is refused; FDB and neighbor
//! dumps, counters reset and rates answer on a live instance.
//!
//! The root tests run one warden on a veth inside a namespace named with a
//! per-run prefix; the namespace, the processes and the files go at the end,
//! also when an assertion fails.

mod common;

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{is_root, warden_bin, Cleanup, Proc};
use testbed::netns;

const LAB_BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

/// Runs `cmd` with stdout a pipe whose reader is already closed.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    cmd.stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .output()
        .expect("spawn")
}

fn assert_quiet(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("failed printing"),
        "{what}: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {:?} {stderr}",
        out.status
    );
}

/// Commands that need nothing running.
#[test]
fn closed_stdout_is_a_quiet_exit() {
    let warden = warden_bin();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = root.join("testbed/examples/gateway.toml");
    let cases: Vec<(PathBuf, Vec<String>)> = vec![
        (warden.clone(), vec!["--version".into()]),
        (warden.clone(), vec!["--help".into()]),
        (
            warden.clone(),
            vec!["check".into(), example.display().to_string()],
        ),
        (
            warden.clone(),
            vec![
                "identity".into(),
                "attest".into(),
                "--exe".into(),
                warden.display().to_string(),
                "--name".into(),
                "spiffe://t/x".into(),
            ],
        ),
        (PathBuf::from(LAB_BIN), vec!["--version".into()]),
        (PathBuf::from(LAB_BIN), vec!["list".into()]),
    ];
    for (bin, args) in cases {
        let mut cmd = Command::new(&bin);
        cmd.args(&args);
        let out = with_closed_stdout(cmd);
        assert_quiet(&out, &format!("{} {}", bin.display(), args.join(" ")));
    }
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(warden_bin())
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("warden "), "{text}");
    assert!(text.contains("(commit "), "{text}");
    let lab = Command::new(LAB_BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&lab.stdout).contains("(commit "));
}

/// One warden on veth `v0` (its peer `v1`) in namespace `<prefix>-a`:
/// started inside it, or (`from_root`) in the root namespace with the
/// port naming the namespace.
struct Solo {
    prefix: String,
    ns: String,
    dir: PathBuf,
    from_root: bool,
    proc_: Option<Proc>,
    _cleanup: Cleanup,
}

impl Solo {
    fn config(&self, name: &str) -> PathBuf {
        self.config_on(name, "v0")
    }

    /// A config named `name` whose uplink is `interface`.
    fn config_on(&self, name: &str, interface: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        let netns = if self.from_root {
            format!("netns = \"{}\"\n", self.ns)
        } else {
            String::new()
        };
        let text = format!(
            "[instance]\nname = \"{name}\"\ncontrol_socket = \"{}\"\n\n\
             [underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\n\n\
             [[port]]\nname = \"uplink\"\nbackend = \"af_packet\"\ninterface = \"{interface}\"\n{netns}\n\
             [[peer]]\naddress = \"10.0.0.2\"\nvnis = [100]\n\n[[vni]]\nid = 100\n",
            self.socket(name).display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    fn start(prefix: &str, from_root: bool) -> Solo {
        let cleanup = Cleanup(prefix.to_string());
        let ns = format!("{prefix}-a");
        let dir = std::env::temp_dir().join(format!("{prefix}-solo"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        netns::add_netns(&ns).unwrap();
        netns::add_veth(&ns, "v0", &ns, "v1").unwrap();
        netns::link_up(&ns, "v0").unwrap();
        netns::link_up(&ns, "v1").unwrap();
        let mut solo = Solo {
            prefix: prefix.to_string(),
            ns,
            dir,
            from_root,
            proc_: None,
            _cleanup: cleanup,
        };
        let cfg = solo.config("first");
        let mut cmd = if from_root {
            Command::new(warden_bin())
        } else {
            netns::exec_in(&solo.ns, warden_bin())
        };
        cmd.arg("run").arg("-c").arg(&cfg);
        solo.proc_ = Some(Proc::spawn(cmd, "warden first"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while warden(&["stats", "--json", "-s"], &solo.socket("first"))
            .status
            .code()
            != Some(0)
        {
            assert!(Instant::now() < deadline, "warden did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        solo
    }
}

impl Drop for Solo {
    fn drop(&mut self) {
        drop(self.proc_.take());
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = netns::cleanup_netns(&self.ns, &[]);
        let _ = &self.prefix;
    }
}

fn warden(args: &[&str], socket: &Path) -> Output {
    Command::new(warden_bin())
        .args(args)
        .arg(socket)
        .output()
        .unwrap()
}

fn prefix(tag: &str) -> String {
    format!("wo{tag}{:05x}", std::process::id() & 0xfffff)
}

#[test]
fn live_instance_cli_safety() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let solo = Solo::start(&prefix("a"), false);
    let sock = solo.socket("first");
    let s = sock.display().to_string();

    // Closed stdout: every client subcommand exits quietly.
    for args in [
        vec!["stats", "-s", &s],
        vec!["stats", "--json", "-s", &s],
        vec!["flows", "-s", &s],
        vec!["fdb", "-s", &s],
        vec!["neighbors", "-s", &s],
        vec!["stats", "--interval", "0.2", "--count", "2", "-s", &s],
    ] {
        let mut cmd = Command::new(warden_bin());
        cmd.args(&args);
        assert_quiet(&with_closed_stdout(cmd), &args.join(" "));
    }

    // Three idle clients connected: `stats` still answers at once.
    let idle: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let t = Instant::now();
    let out = warden(&["stats", "--json", "-s"], &sock);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stats took {:?}",
        t.elapsed()
    );
    // A half-sent command from one of them does not block either.
    (&idle[0]).write_all(b"sta").unwrap();
    assert!(warden(&["stats", "--json", "-s"], &sock).status.success());
    drop(idle);

    // A second instance on the same interface, another control socket.
    let second = solo.config("second");
    let t = Instant::now();
    let out = netns::exec_in(&solo.ns, warden_bin())
        .arg("run")
        .arg("-c")
        .arg(&second)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second instance started: {err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let first_pid = solo.proc_.as_ref().unwrap().child.as_ref().unwrap().id();
    assert!(
        err.contains("interface v0 is already used by another warden"),
        "{err}"
    );
    // The holder is the warden process (`ip netns exec` execs it: same pid).
    assert!(err.contains(&format!("pid {first_pid}")), "{err}");
    assert!(err.contains("instance first"), "{err}");
    assert!(!solo.socket("second").exists());
    // The first keeps running.
    let out = warden(&["stats", "--json", "-s"], &sock);
    assert!(out.status.success(), "first instance gone");

    // stats --reset and --total; rates; fdb and neighbors.
    assert!(warden(&["stats", "--reset", "-s"], &sock).status.success());
    let after: serde_json::Value =
        serde_json::from_slice(&warden(&["stats", "--json", "-s"], &sock).stdout).unwrap();
    let total: serde_json::Value =
        serde_json::from_slice(&warden(&["stats", "--total", "--json", "-s"], &sock).stdout)
            .unwrap();
    let tx = |v: &serde_json::Value| v["ports"]["uplink"]["tx_packets"].as_u64().unwrap();
    assert!(tx(&after) <= tx(&total), "{after} {total}");
    let out = warden(&["stats", "--interval", "0.5", "--count", "2", "-s"], &sock);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("cycles/packet").count(), 2, "{text}");
    assert!(text.contains("drops/s"), "{text}");
    let fdb = warden(&["fdb", "--json", "-s"], &sock);
    let v: serde_json::Value = serde_json::from_slice(&fdb.stdout).unwrap();
    assert!(v["rows"].is_array(), "{v}");
    // flows on an instance without identity says why it shows no identities.
    let fl = warden(&["flows", "-s"], &sock);
    let text = String::from_utf8_lossy(&fl.stdout);
    assert!(text.contains("identity is off on first"), "{text}");
    assert!(
        text.contains("dir") && text.contains("age s") && text.contains("idle s"),
        "{text}"
    );
    let nb = warden(&["neighbors", "-s"], &sock);
    assert!(String::from_utf8_lossy(&nb.stdout).contains("neighbors"));
}

/// `warden check` reports what `run` would refuse (as warnings, with
/// positions), misspelled stats paths in lab checks (as errors), names a
/// duplicate key, and says so when a file of the other kind is given.
#[test]
fn check_reports_what_run_would_refuse() {
    let dir = std::env::temp_dir().join(format!("warden-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("w.toml");
    std::fs::write(
        &w,
        "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\n\n\
         [[port]]\nname = \"uplink\"\nbackend = \"af_packet\"\ninterface = \"nosuchif9\"\n\n\
         [[port]]\nname = \"web\"\nbackend = \"tap\"\ninterface = \"wl0\"\nnetns = \"no-such-ns-9\"\nvni = 100\n\n\
         [[vni]]\nid = 100\n",
    )
    .unwrap();
    let w2 = dir.join("w2.toml");
    std::fs::write(
        &w2,
        "[underlay]\nport = \"uplink\"\naddress = \"10.0.0.1/24\"\n\n\
         [[port]]\nname = \"uplink\"\nbackend = \"af_packet\"\ninterface = \"lo\"\n\n\
         [identity]\nwarden_id = \"a\"\nsecret_file = \"/nonexistent/pair.key\"\n",
    )
    .unwrap();
    let out = Command::new(warden_bin())
        .arg("check")
        .arg(&w)
        .arg(&w2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let origin = w.display().to_string();
    assert!(out.status.success(), "warnings only: {err}");
    for want in [
        format!("{origin}:8:13: warning: interface `nosuchif9` of port `uplink` does not exist"),
        format!(
            "{origin}:14:9: warning: network namespace `no-such-ns-9` of port `web` does not exist"
        ),
        format!(
            "{}:12:15: warning: secret file /nonexistent/pair.key",
            w2.display()
        ),
    ] {
        assert!(err.contains(&want), "no {want:?} in:\n{err}");
    }

    // A lab check's stats path that names no counter: an error, positioned.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = std::fs::read_to_string(root.join("examples/node.toml")).unwrap();
    let bad = node.replace("vni.100.rx_decap_packets", "vni.100.decap_packets");
    let lab = dir.join("lab.toml");
    std::fs::write(&lab, &bad).unwrap();
    let out = Command::new(warden_bin())
        .arg("check")
        .arg(&lab)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = 1 + bad[..bad.find("\"vni.100.decap_packets").unwrap()]
        .matches('\n')
        .count();
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}:{line}:", lab.display()))
            && err.contains("no counter `vni.100.decap_packets`")
            && err.contains("rx_decap_packets"),
        "{err}"
    );

    // Duplicate keys are named.
    let dup = dir.join("dup.toml");
    std::fs::write(&dup, "[instance]\nname = \"a\"\nname = \"b\"\n").unwrap();
    let out = Command::new(warden_bin())
        .arg("check")
        .arg(&dup)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":3:1: duplicate key `name`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The other kind of file: a hint naming the command that takes it.
    let out = Command::new(warden_bin())
        .args(["stats", "-c"])
        .arg(root.join("examples/node.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this is a lab topology") && err.contains("warden-lab up"),
        "{err}"
    );
    let out = Command::new(LAB_BIN).arg("up").arg(&w).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this is a warden instance config") && err.contains("warden run -c"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port with `netns` is opened inside that namespace, whatever its
/// backend: `warden run` in the root namespace answers ping on a veth that
/// exists only inside the namespace, and `warden check` looks for the
/// interface there.
#[test]
fn af_packet_port_opens_inside_its_netns() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let solo = Solo::start(&prefix("n"), true);
    let ns = &solo.ns;
    netns::add_addr(ns, "v1", "10.0.0.2/24").unwrap();
    let ping = netns::exec_in(ns, "ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "no answer from warden's underlay address through v0 in {ns}: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let sock = solo.socket("first");
    let stats: serde_json::Value =
        serde_json::from_slice(&warden(&["stats", "--json", "-s"], &sock).stdout).unwrap();
    assert!(
        stats["ports"]["uplink"]["rx_packets"].as_u64().unwrap() >= 3,
        "{stats}"
    );

    // check looks inside the namespace: v0 is there (it is not in the
    // root namespace), v9 is not.
    for (interface, missing) in [("v0", false), ("v9", true)] {
        let out = Command::new(warden_bin())
            .arg("check")
            .arg(solo.config_on("checked", interface))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let warned = err.contains(&format!(
            "warning: interface `{interface}` of port `uplink` does not exist in namespace `{ns}`"
        ));
        assert!(out.status.success() && warned == missing, "{err}");
    }
}
