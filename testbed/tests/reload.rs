//! Hot reload in a running lab (issue 9): testbed/examples/policy.toml,
//! two paced TCP transfers from api (w1, behind n1) running through n2:
//! to db:5001 and to cache:5002, both allowed. Meanwhile:
//!
//! 1. n2's config file gets a syntax error and `warden reload` is asked:
//!    it fails naming file:line:column, and both transfers go on;
//! 2. a change that needs a restart (another port interface) is refused
//!    the same way;
//! 3. the file gets a policy without cache:5002 and `warden reload` again:
//!    the transfer to cache is reset (its source sees the connection
//!    reset), the one to db completes byte for byte, and n2 counts
//!    `policy_revoked`.
//!
//! Needs root and the release binaries (scripts/test builds them).

mod common;
use common::{is_root, lab_up, warden_bin, Cleanup};

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dataplane::port::in_netns;
use testbed::checks::{counter, warden_stats};
use testbed::netns::NETNS_DIR;
use testbed::state::ns_name;
use testbed::tcp;

const BYTES: u64 = 12 << 20;
/// 2 MiB/s: six seconds per transfer, long enough for the reloads.
const RATE: u64 = 2 << 20;

fn reload(socket: &Path) -> (bool, String) {
    let out = Command::new(warden_bin())
        .args(["reload", "-s"])
        .arg(socket)
        .output()
        .expect("run warden reload");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A sink in namespace `ns` on `addr`, taking one transfer of [`BYTES`].
fn sink(ns: PathBuf, addr: SocketAddr, seed: u64) -> std::thread::JoinHandle<Result<u64, String>> {
    let listener = in_netns(&ns, || Ok(TcpListener::bind(addr)))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("listen on {addr}: {e}"));
    std::thread::spawn(move || {
        tcp::sink_accept(&listener, BYTES, seed, Duration::from_secs(40))
            .map(|t| t.bytes)
            .map_err(|e| e.to_string())
    })
}

/// A paced source in namespace `ns` toward `addr`.
fn source(
    ns: PathBuf,
    addr: SocketAddr,
    seed: u64,
) -> std::thread::JoinHandle<Result<u64, String>> {
    std::thread::spawn(move || {
        in_netns(&ns, || {
            Ok(
                tcp::source_paced(addr, BYTES, seed, Duration::from_secs(40), Some(RATE))
                    .map(|t| t.bytes)
                    .map_err(|e| e.to_string()),
            )
        })
        .unwrap_or_else(|e| Err(e.to_string()))
    })
}

#[test]
fn a_reload_revokes_one_transfer_and_a_broken_file_changes_nothing() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let p = format!("rl{}", std::process::id() % 100_000);
    let _cleanup = Cleanup(p.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let running = lab_up(&file, &p);
    let dir = running.state().dir.clone();
    let (n2_conf, n2_sock) = (dir.join("n2.toml"), dir.join("n2.sock"));
    let original = std::fs::read_to_string(&n2_conf).expect("n2's config");
    let ns = |h: &str| Path::new(NETNS_DIR).join(ns_name(&p, h));
    let db: SocketAddr = "10.1.0.23:5001".parse().unwrap();
    let cache: SocketAddr = "10.1.0.24:5002".parse().unwrap();
    let sinks = [sink(ns("w3"), db, 1), sink(ns("w4"), cache, 2)];
    let sources = [source(ns("w1"), db, 1), source(ns("w1"), cache, 2)];
    std::thread::sleep(Duration::from_millis(1500));

    // 1. A broken file: refused with its position; nothing changes.
    std::fs::write(&n2_conf, format!("{original}\n[[port]\nname = \"oops\"\n")).unwrap();
    let (ok, text) = reload(&n2_sock);
    eprintln!("broken file: {text}");
    assert!(!ok, "a broken file must not reload: {text}");
    let position = format!("{}:", n2_conf.display());
    assert!(
        text.contains(&position),
        "the error names the file and position: {text}"
    );

    // 2. A change that needs a restart: refused, says so.
    let moved = original.replacen("interface = \"", "interface = \"x", 1);
    std::fs::write(&n2_conf, &moved).unwrap();
    let (ok, text) = reload(&n2_sock);
    eprintln!("restart-only change: {text}");
    assert!(!ok && text.contains("restart"), "{text}");

    // 3. The policy without cache:5002.
    let revoking = original.replace("ports = [5002, 5003]", "ports = [5003]");
    assert_ne!(revoking, original, "the lab's rule for cache:5002 moved");
    std::fs::write(&n2_conf, &revoking).unwrap();
    let (ok, text) = reload(&n2_sock);
    eprintln!("revoking reload: {text}");
    assert!(ok, "{text}");
    assert!(text.contains("policy"), "{text}");

    let [to_db, to_cache] = sources.map(|h| h.join().expect("source thread"));
    let [at_db, at_cache] = sinks.map(|h| h.join().expect("sink thread"));
    eprintln!("to db: {to_db:?} / {at_db:?}; to cache: {to_cache:?} / {at_cache:?}");
    assert_eq!(to_db, Ok(BYTES), "the allowed transfer completes");
    assert_eq!(at_db, Ok(BYTES), "byte for byte");
    let reset = to_cache
        .as_ref()
        .err()
        .is_some_and(|e| e.to_lowercase().contains("reset"));
    assert!(reset, "the revoked transfer is reset: {to_cache:?}");
    assert!(
        at_cache.is_err(),
        "the revoked transfer never completes: {at_cache:?}"
    );
    let json = warden_stats(&warden_bin(), &n2_sock).unwrap_or_else(|e| panic!("{e}"));
    let revoked = counter(&json, "drops.policy_revoked").unwrap_or_else(|e| panic!("{e}"));
    assert!(revoked >= 1, "n2 counted the revoked segments");
    running.teardown().expect("teardown");
}
