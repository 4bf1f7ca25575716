//! The `warden` binary as a user meets it: `check` reports exactly one
//! `FILE:LINE:COLUMN: message` line per bad file, `run` refuses a bad
//! config before it creates its control socket, every committed lab and
//! example file checks clean, and `stats` without a running warden says so
//! in one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// A directory of this test run, removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("warden-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.0.join(file);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run warden with `args`; a run that outlives `limit` is killed and fails
/// the test.
fn warden(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(WARDEN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warden");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait for warden").is_some() {
            return child.wait_with_output().expect("warden output");
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("warden output");
            panic!(
                "warden {args:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check(path: &Path) -> Output {
    warden(
        &["check", path.to_str().expect("UTF-8 path")],
        Duration::from_secs(20),
    )
}

/// A valid warden config; each error case below edits one thing in it.
fn base(socket: &Path) -> String {
    format!(
        r#"[instance]
name = "cli"
control_socket = "{}"

[underlay]
port = "uplink"
address = "10.0.0.1/24"

[[port]]
name = "uplink"
backend = "af_packet"
interface = "wdn-cli-nope0"

[[port]]
name = "web"
backend = "tap"
interface = "wdn-cli-tap0"
vni = 100

[[peer]]
address = "10.0.0.2"
vnis = [100]

[[vni]]
id = 100
gateway = "10.1.0.1/24"
"#,
        socket.display()
    )
}

/// 1-based line and column (in characters) of the `nth` occurrence
/// (0-based) of `needle` in `text`, counted independently of the config
/// crate.
fn position(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let (at, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in the test text"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..at].chars().count() + 1)
}

/// Asserts that `out` is a failure with exactly one stderr line, starting
/// `FILE:LINE:COLUMN: ` and mentioning `words`.
fn assert_one_error_line(out: &Output, file: &Path, (line, col): (usize, usize), words: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status for {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    let prefix = format!("{}:{line}:{col}: ", file.display());
    assert!(
        stderr.starts_with(&prefix),
        "expected {prefix:?}..., got {stderr:?}"
    );
    assert!(stderr.contains(words), "{words:?} in {stderr:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn base_config_is_valid() {
    let dir = TempDir::new("base");
    let f = dir.write("base.toml", &base(&dir.0.join("cli.sock")));
    let out = check(&f);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: ok (warden config)\n", f.display())
    );
    // Only warnings: its interfaces do not exist on this machine.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().all(|l| l.contains(": warning: ")),
        "{stderr}"
    );
}

#[test]
fn check_reports_each_config_error_kind_at_its_position() {
    let dir = TempDir::new("errors");
    let good = base(&dir.0.join("cli.sock"));
    // (file, text, needle the error points at, its occurrence, words).
    let cases: Vec<(&str, String, &str, usize, &str)> = vec![
        (
            "unknown-field.toml",
            good.replace("name = \"cli\"\n", "name = \"cli\"\ncolour = \"red\"\n"),
            "colour",
            0,
            "unknown field `colour`",
        ),
        (
            "unknown-field-nested.toml",
            good.replace("vnis = [100]\n", "vnis = [100]\nweight = 3\n"),
            "weight",
            0,
            "unknown field `weight`",
        ),
        (
            "bad-cidr.toml",
            good.replace("\"10.1.0.1/24\"", "\"10.1.0.1/33\""),
            "\"10.1.0.1/33\"",
            0,
            "invalid CIDR \"10.1.0.1/33\"",
        ),
        (
            "duplicate-vni.toml",
            format!("{good}\n[[vni]]\nid = 100\n"),
            "100",
            3,
            "duplicate VNI 100",
        ),
        (
            "unknown-underlay-port.toml",
            good.replace("port = \"uplink\"", "port = \"uplnk\""),
            "\"uplnk\"",
            0,
            "uplnk",
        ),
        (
            "unknown-fdb-port.toml",
            format!("{good}\n[[fdb]]\nvni = 100\nmac = \"02:00:00:00:00:01\"\nport = \"ghost\"\n"),
            "\"ghost\"",
            0,
            "ghost",
        ),
        (
            "route-to-unknown-vni.toml",
            format!("{good}\n[[route]]\ndestination = \"10.9.0.0/16\"\nvni = 555\n"),
            "555",
            0,
            "555",
        ),
    ];
    for (file, text, needle, nth, words) in cases {
        let f = dir.write(file, &text);
        let at = position(&text, needle, nth);
        assert_one_error_line(&check(&f), &f, at, words);
    }
}

#[test]
fn check_reports_errors_inside_a_lab_file_at_their_position() {
    let dir = TempDir::new("lab");
    let text = r#"[lab]
name = "cli"

[[host]]
name = "gw"

  [[host.interface]]
  name = "eth0"
  address = "10.0.0.9/24"
  peer = "n1:eth0"

[[host]]
name = "n1"

  [[host.interface]]
  name = "eth0"
  peer = "gw:eth0"

[[warden]]
name = "gw"
host = "gw"

  [warden.config.underlay]
  port = "uplink"
  address = "10.0.0.1/40"

  [[warden.config.port]]
  name = "uplink"
  backend = "af_packet"
  interface = "eth0"
"#;
    let f = dir.write("lab.toml", text);
    let at = position(text, "\"10.0.0.1/40\"", 0);
    assert_one_error_line(&check(&f), &f, at, "invalid CIDR");
    // Several files: each bad one gives its line, the good ones theirs.
    let good = dir.write("good.toml", &base(&dir.0.join("cli.sock")));
    let out = warden(
        &["check", good.to_str().unwrap(), f.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr
        .lines()
        .filter(|l| !l.contains(": warning: "))
        .count();
    assert_eq!(errors, 1, "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn check_of_a_missing_file_is_one_line_at_1_1() {
    let dir = TempDir::new("missing");
    let f = dir.0.join("absent.toml");
    let out = check(&f);
    assert_one_error_line(&out, &f, (1, 1), "");
}

#[test]
fn run_with_a_bad_config_fails_before_creating_the_control_socket() {
    let dir = TempDir::new("run-bad");
    let sock_dir = dir.0.join("run");
    let sock = sock_dir.join("cli.sock");
    let text = base(&sock).replace("\"10.1.0.1/24\"", "\"10.1.0.1/33\"");
    let f = dir.write("bad.toml", &text);
    let out = warden(&["run", "-c", f.to_str().unwrap()], Duration::from_secs(20));
    assert_one_error_line(
        &out,
        &f,
        position(&text, "\"10.1.0.1/33\"", 0),
        "invalid CIDR",
    );
    assert!(!sock.exists(), "no control socket");
    assert!(!sock_dir.exists(), "not even its directory");
}

#[test]
fn run_whose_port_cannot_open_fails_and_removes_the_control_socket() {
    let dir = TempDir::new("run-port");
    let sock = dir.0.join("cli.sock");
    let f = dir.write("noport.toml", &base(&sock));
    let out = warden(&["run", "-c", f.to_str().unwrap()], Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    // Logged (tracing's text format): "TIME ERROR port uplink: ...".
    assert!(
        stderr.contains(" ERROR port uplink: ") && stderr.contains("wdn-cli-nope0"),
        "{stderr:?}"
    );
    assert!(!sock.exists(), "control socket removed");
}

#[test]
fn every_committed_lab_and_example_file_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["testbed/examples", "testbed/tests/fixtures"] {
        for e in std::fs::read_dir(root.join(dir)).expect("read dir") {
            let p = e.expect("dir entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 3, "found {files:?}");
    files.sort();
    for f in files {
        let out = check(&f);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with(&format!("{}: ok (", f.display())),
            "{stdout}"
        );
    }
}

#[test]
fn stats_without_a_running_warden_is_one_clear_line() {
    let sock = "/nonexistent/warden-cli-test.sock";
    let out = warden(&["stats", "--socket", sock], Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with(&format!("warden: cannot reach warden at {sock}: ")),
        "{stderr:?}"
    );
    assert!(stderr.contains("is it running?"), "{stderr:?}");
    assert!(out.stdout.is_empty());
    // The same through --config: the socket named in the config.
    let dir = TempDir::new("stats");
    let sock = dir.0.join("absent.sock");
    let f = dir.write("cfg.toml", &base(&sock));
    let out = warden(
        &["stats", "--config", f.to_str().unwrap(), "--json"],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains(&sock.display().to_string()), "{stderr:?}");
}
