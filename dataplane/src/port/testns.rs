//! Network namespace fixtures for port tests (Firecracker's `NetNs`, in
//! small): every namespace is named per run and removed on drop, also when
//! the test fails; the links inside go with it. Needs root and iproute2.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const IP: &str = "/usr/sbin/ip";

/// IEEE 802 local experimental ethertype: nothing else sends it.
pub const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// A test frame `dst` <- `src` of `len` bytes carrying `seq`, with a
/// payload that differs per sequence number.
pub fn frame(dst: overlay::MacAddr, src: overlay::MacAddr, seq: u16, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&TEST_ETHERTYPE);
    f.extend_from_slice(&seq.to_be_bytes());
    let mut x = seq as u8;
    while f.len() < len {
        f.push(x);
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    f
}

/// True for test frames, tagged or not.
pub fn is_test_frame(f: &[u8]) -> bool {
    f.get(12..14) == Some(&TEST_ETHERTYPE[..]) || f.get(16..18) == Some(&TEST_ETHERTYPE[..])
}

/// A name unique to this process and call, short enough for an interface.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id());
    assert!(name.len() <= 15, "name {name} too long");
    name
}

fn run(args: &[&str]) -> String {
    let out = Command::new(IP).args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace owned by the test.
#[derive(Debug)]
pub struct NetNs {
    /// Its name under /var/run/netns.
    pub name: String,
}

impl NetNs {
    /// Creates `wd<tag><pid>x<n>`.
    pub fn new(tag: &str) -> NetNs {
        let name = unique(&format!("wd{tag}"));
        run(&["netns", "add", &name]);
        NetNs { name }
    }

    /// The namespace file, for `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// Runs `ip -n NS ARGS...`; panics with ip's message on failure.
    pub fn ip(&self, args: &[&str]) {
        self.ip_output(args);
    }

    /// Runs `ip -n NS ARGS...` and returns its output.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new(IP).args(["netns", "del", &self.name]).output();
    }
}

/// A veth pair with end `a` in one namespace and `b` in another (or the
/// same), both up. Removed with the namespaces.
#[derive(Debug)]
pub struct VethPair {
    /// Name of the end in the first namespace.
    pub a: String,
    /// Name of the end in the second namespace.
    pub b: String,
}

impl VethPair {
    /// Creates and brings up the pair.
    pub fn new(ns_a: &NetNs, ns_b: &NetNs) -> VethPair {
        let a = unique("va");
        let b = unique("vb");
        ns_a.ip(&[
            "link", "add", "name", &a, "type", "veth", "peer", "name", &b, "netns", &ns_b.name,
        ]);
        ns_a.ip(&["link", "set", &a, "up"]);
        ns_b.ip(&["link", "set", &b, "up"]);
        VethPair { a, b }
    }
}
