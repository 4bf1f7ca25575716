//! `warden identity attest` as a user meets it: the printed table pastes
//! into a config that `warden check` accepts, the printed id is the
//! document's id, and a binary that changes by one byte gets a new id.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use identity::IdentityDoc;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// The workload "binary" of these tests and its SHA-256, computed
/// independently (`printf '#!/bin/sh\necho api v1\n' | sha256sum`).
const EXE: &[u8] = b"#!/bin/sh\necho api v1\n";
const EXE_SHA256: &str = "262795f298ee0575e0ebe5c72f9d894a9f3461ff98f9177a53455a89a811843b";
/// The same file with one byte changed (`1` -> `2`).
const EXE_V2_SHA256: &str = "9670402cb04a4eebe39e61869c838bf0c8cda0b34dfc719d934a9751f3a3fde7";

const NAME: &str = "spiffe://lab/ns/payments/sa/api";

/// A directory of this test run, removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("warden-attest-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, file: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(file);
        std::fs::write(&p, data).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run warden with `args`; a run that outlives 20 s is killed and fails
/// the test.
fn warden(args: &[&str]) -> Output {
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
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("warden output");
            panic!(
                "warden {args:?} still running; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Attest `exe` with the labels and host id of these tests; returns the
/// printed id and the whole output.
fn attest(exe: &Path) -> (String, String) {
    let out = warden(&[
        "identity",
        "attest",
        "--exe",
        path(exe),
        "--name",
        NAME,
        "--label",
        "app=api",
        "--label",
        "team name=pay ments",
        "--host-id",
        "node-1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "attest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    let first = stdout.lines().next().unwrap_or_default();
    let id = first
        .strip_prefix("# id = ")
        .unwrap_or_else(|| panic!("first line {first:?} is not `# id = ...`"));
    assert_eq!(id.len(), 8, "{id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
    (id.to_owned(), stdout)
}

/// A node config with identity on; `documents` is pasted inside
/// `[identity]`, and the one workload is bound to `NAME`.
fn config(documents: &str) -> String {
    format!(
        r#"[underlay]
port = "uplink"
address = "10.0.0.1/24"

[identity]
warden_id = "node-1"
secret_file = "/etc/warden/pair.key"

{documents}
[[port]]
name = "uplink"
backend = "af_packet"
interface = "eth0"

[[port]]
name = "w1"
backend = "tap"
interface = "wl0"
vni = 100

[[vni]]
id = 100

[[workload]]
port = "w1"
mac = "02:00:00:00:01:21"
ip = "10.1.0.21"
identity = "{NAME}"

[[policy.set]]
name = "api"

[[policy.set.rule]]
from = ["unauthenticated"]
to = ["{NAME}"]
action = "allow"
"#
    )
}

/// The document the tests expect, built without the binary.
fn expected_doc(sha: &str) -> IdentityDoc {
    IdentityDoc {
        name: NAME.into(),
        labels: [
            ("app".to_string(), "api".to_string()),
            ("team name".to_string(), "pay ments".to_string()),
        ]
        .into(),
        exe_sha256: identity::doc::parse_sha256(sha),
        host_id: Some("node-1".into()),
    }
}

#[test]
fn attested_document_pastes_into_a_config_that_checks() {
    let dir = TempDir::new("paste");
    let exe = dir.write("api", EXE);
    let (id, out) = attest(&exe);
    assert!(
        out.contains(&format!("exe_sha256 = \"{EXE_SHA256}\"")),
        "{out}"
    );

    let f = dir.write("node.toml", config(&out).as_bytes());
    let check = warden(&["check", path(&f)]);
    assert!(check.status.success(), "{check:?}");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout),
        format!("{}: ok (warden config)\n", f.display())
    );

    // The printed id is the document's id, and the config reads back the
    // very document that was attested.
    let want = expected_doc(EXE_SHA256);
    assert_eq!(id, want.id().to_string());
    let cfg = config::load_warden(&f).expect("load");
    assert_eq!(cfg.documents, vec![want.clone()]);
    assert_eq!(cfg.document_id(0), Some(want.id()));
}

#[test]
fn one_changed_byte_is_a_new_identity() {
    let dir = TempDir::new("byte");
    let exe = dir.write("api", EXE);
    let (id1, out1) = attest(&exe);
    let mut v2 = EXE.to_vec();
    let at = v2.iter().rposition(|&b| b == b'1').expect("a 1 in EXE");
    v2[at] = b'2';
    std::fs::write(&exe, &v2).expect("rewrite exe");
    let (id2, out2) = attest(&exe);
    assert_ne!(id1, id2);
    assert_eq!(id2, expected_doc(EXE_V2_SHA256).id().to_string());
    assert!(out2.contains(EXE_V2_SHA256), "{out2}");

    // Both documents side by side (two names would be needed to declare
    // both; the same name twice is refused, naming the first line).
    let both = format!("{out1}\n{out2}");
    let f = dir.write("both.toml", config(&both).as_bytes());
    let check = warden(&["check", path(&f)]);
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("duplicate identity name"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A config that still carries the old hash keeps the old id, so policy
    // written for it does not match the new binary.
    let old = config::parse_warden(&config(&out1), "old").expect("old");
    let new = config::parse_warden(&config(&out2), "new").expect("new");
    assert_ne!(old.document_id(0), new.document_id(0));
}

#[test]
fn bad_input_is_one_line_on_stderr_and_nothing_on_stdout() {
    let dir = TempDir::new("bad");
    let exe = dir.write("api", EXE);
    let missing = dir.0.join("missing");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--exe", path(&missing), "--name", NAME], "cannot read"),
        (
            vec!["--exe", path(&exe), "--name", "unauthenticated"],
            "reserved",
        ),
        (vec!["--exe", path(&exe), "--name", ""], "the name is empty"),
        (
            vec!["--exe", path(&exe), "--name", NAME, "--label", "app"],
            "expected KEY=VALUE",
        ),
        (
            vec![
                "--exe",
                path(&exe),
                "--name",
                NAME,
                "--label",
                "a=1",
                "--label",
                "a=2",
            ],
            "given twice",
        ),
    ];
    for (args, words) in cases {
        let mut all = vec!["identity", "attest"];
        all.extend(&args);
        let out = warden(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{words:?} in {stderr:?}");
    }
}
