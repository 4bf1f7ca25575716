//! Network namespaces and links, created with `ip` and removed again.
//!
//! Every resource made here has a name chosen by the caller and is removed by
//! name, so that teardown works from a state file written by another process
//! (after `kill -9` of warden-lab) as well as from a [`NetNs`] guard going out
//! of scope in a failing test. Removal treats "already gone" as success.

use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::process;

/// Where `ip netns add` bind-mounts namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A command that could not be run or that exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

impl CmdError {
    /// The failed command's standard error, or the spawn error.
    pub fn stderr(&self) -> String {
        match self {
            Self::Spawn { source, .. } => source.to_string(),
            Self::Failed { stderr, .. } => stderr.clone(),
        }
    }
}

/// Shell-like rendering of a command line for error messages.
pub fn render(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        out.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            out.push_str(&format!("{arg:?}"));
        } else {
            out.push_str(&arg);
        }
    }
    out
}

/// Runs a command to completion; success means exit status 0. Returns stdout.
pub fn run(cmd: &mut Command) -> Result<String, CmdError> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(CmdError::Failed {
            command: render(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn output(cmd: &mut Command) -> Result<Output, CmdError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| CmdError::Spawn {
            command: render(cmd),
            source,
        })
}

/// `ip ARGS...`
pub fn ip<I, S>(args: I) -> Result<String, CmdError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run(&mut cmd)
}

/// `ip -n NS ARGS...`
pub fn ip_in<I, S>(ns: &str, args: I) -> Result<String, CmdError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(ns).args(args);
    run(&mut cmd)
}

/// A command that runs `program` inside namespace `ns` (`ip netns exec`).
///
/// `ip netns exec` execs the program in place, so the child's PID is the
/// program's PID.
pub fn exec_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.arg("netns").arg("exec").arg(ns).arg(program);
    cmd
}

/// True when an error from `ip` only says that the object does not exist.
fn is_gone(err: &CmdError) -> bool {
    let s = err.stderr();
    s.contains("Cannot find device")
        || s.contains("No such file or directory")
        || s.contains("does not exist")
        || s.contains("Invalid netns name")
}

/// Names of all network namespaces (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>, CmdError> {
    let out = ip(["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// True when namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    PathBuf::from(NETNS_DIR).join(name).exists()
}

/// Creates namespace `name`, with IPv6 off and its loopback up.
///
/// Lab traffic is IPv4; without IPv6, links carry no router solicitations,
/// MLD reports or DAD probes that would show up as flooded BUM traffic in
/// warden's counters.
pub fn add_netns(name: &str) -> Result<(), CmdError> {
    ip(["netns", "add", name])?;
    let mut cmd = exec_in(name, "sh");
    cmd.args([
        "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
    ]);
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        run(&mut cmd)?;
    }
    ip_in(name, ["link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes namespace `name`; a missing namespace is not an error.
pub fn del_netns(name: &str) -> Result<(), CmdError> {
    match ip(["netns", "del", name]) {
        Err(e) if is_gone(&e) || !netns_exists(name) => Ok(()),
        other => other.map(drop),
    }
}

/// PIDs of the processes inside namespace `name` (`ip netns pids`).
pub fn netns_pids(name: &str) -> Result<Vec<u32>, CmdError> {
    if !netns_exists(name) {
        return Ok(Vec::new());
    }
    let out = ip(["netns", "pids", name])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Terminates every process inside namespace `name` (TERM, then KILL after
/// `grace`). The last resort for processes whose PIDs were never recorded.
pub fn kill_netns_pids(name: &str, grace: Duration) -> Result<Vec<u32>, CmdError> {
    let pids = netns_pids(name)?;
    let procs: Vec<process::Pid> = pids
        .iter()
        .filter_map(|&pid| process::Pid::current(pid))
        .collect();
    process::terminate_all(&procs, grace);
    Ok(pids)
}

/// Deletes link `name` in namespace `ns`; a missing link or namespace is not
/// an error.
pub fn del_link(ns: &str, name: &str) -> Result<(), CmdError> {
    if !netns_exists(ns) {
        return Ok(());
    }
    match ip_in(ns, ["link", "del", "dev", name]) {
        Err(e) if is_gone(&e) => Ok(()),
        other => other.map(drop),
    }
}

/// True when link `name` exists in namespace `ns`.
pub fn link_exists(ns: &str, name: &str) -> bool {
    ip_in(ns, ["link", "show", "dev", name]).is_ok()
}

/// Names of the links in namespace `ns` other than `lo`.
pub fn list_links(ns: &str) -> Result<Vec<String>, CmdError> {
    let out = ip_in(ns, ["-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty() && n != "lo")
        .collect())
}

/// A veth pair whose ends are created directly in their namespaces.
pub fn add_veth(ns_a: &str, name_a: &str, ns_b: &str, name_b: &str) -> Result<(), CmdError> {
    ip([
        "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b, "netns", ns_b,
    ])
    .map(drop)
}

/// A Linux bridge, up, that switches frames as a plain L2 switch does.
pub fn add_bridge(ns: &str, name: &str) -> Result<(), CmdError> {
    ip_in(ns, ["link", "add", name, "type", "bridge"])?;
    plain_l2_bridging(ns)?;
    link_up(ns, name)
}

/// Where br_netfilter is loaded, a new namespace passes bridged IPv4 through
/// iptables, which silently drops frames with a bad IP checksum and trims
/// padding: a lab switch must deliver what it is given, so turn that off.
fn plain_l2_bridging(ns: &str) -> Result<(), CmdError> {
    let script = "for k in iptables ip6tables arptables; do \
                  f=/proc/sys/net/bridge/bridge-nf-call-$k; [ ! -e $f ] || echo 0 > $f; done";
    let mut cmd = exec_in(ns, "sh");
    cmd.args(["-c", script]);
    run(&mut cmd).map(drop)
}

/// Enslaves `dev` to bridge `bridge`.
pub fn set_master(ns: &str, dev: &str, bridge: &str) -> Result<(), CmdError> {
    ip_in(ns, ["link", "set", "dev", dev, "master", bridge]).map(drop)
}

/// `ip link set dev DEV up`
pub fn link_up(ns: &str, dev: &str) -> Result<(), CmdError> {
    ip_in(ns, ["link", "set", "dev", dev, "up"]).map(drop)
}

/// `ip link set dev DEV mtu MTU`
pub fn set_mtu(ns: &str, dev: &str, mtu: u32) -> Result<(), CmdError> {
    ip_in(ns, ["link", "set", "dev", dev, "mtu", &mtu.to_string()]).map(drop)
}

/// `ip link set dev DEV address MAC`
pub fn set_mac(ns: &str, dev: &str, mac: &str) -> Result<(), CmdError> {
    ip_in(ns, ["link", "set", "dev", dev, "address", mac]).map(drop)
}

/// `ip addr add CIDR dev DEV`
pub fn add_addr(ns: &str, dev: &str, cidr: &str) -> Result<(), CmdError> {
    ip_in(ns, ["addr", "add", cidr, "dev", dev]).map(drop)
}

/// `ip route add DEST via VIA`
pub fn add_route(ns: &str, destination: &str, via: &str) -> Result<(), CmdError> {
    ip_in(ns, ["route", "add", destination, "via", via]).map(drop)
}

/// A persistent TAP device (`ip tuntap add`), which outlives the file
/// descriptors that warden opens on it.
pub fn add_tap(ns: &str, name: &str) -> Result<(), CmdError> {
    ip_in(ns, ["tuntap", "add", "dev", name, "mode", "tap"]).map(drop)
}

/// Parameters of a Linux kernel VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub local: String,
    pub remote: String,
    pub device: String,
    pub port: u16,
    pub gbp: bool,
    pub mtu: u32,
}

impl VxlanSpec {
    /// The `ip link add` arguments for this device.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "link",
            "add",
            &self.name,
            "mtu",
            &self.mtu.to_string(),
            "type",
            "vxlan",
            "id",
            &self.vni.to_string(),
            "local",
            &self.local,
            "remote",
            &self.remote,
            "dev",
            &self.device,
            "dstport",
            &self.port.to_string(),
            "nolearning",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.gbp {
            args.push("gbp".into());
        }
        args
    }
}

/// A kernel VXLAN device (not yet up).
pub fn add_vxlan(ns: &str, spec: &VxlanSpec) -> Result<(), CmdError> {
    ip_in(ns, spec.args()).map(drop)
}

/// Error of [`disable_tx_offload`].
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// `ethtool` is not installed.
    #[error("ethtool is needed to turn tx checksum offload off on veths (veths otherwise hand AF_PACKET sockets frames with partial checksums); install it: apt-get install ethtool")]
    NoEthtool,
    /// `ethtool` failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
}

/// Turns tx checksum offload off (`ethtool -K DEV tx off`), so that frames
/// leave veths with complete checksums.
pub fn disable_tx_offload(ns: &str, dev: &str) -> Result<(), OffloadError> {
    let mut cmd = exec_in(ns, "ethtool");
    cmd.args(["-K", dev, "tx", "off"]);
    match run(&mut cmd) {
        Ok(_) => Ok(()),
        Err(e) if e.stderr().contains("No such file or directory") && !has_ethtool() => {
            Err(OffloadError::NoEthtool)
        }
        Err(e) => Err(e.into()),
    }
}

/// True when an `ethtool` binary is on PATH.
pub fn has_ethtool() -> bool {
    which("ethtool").is_some()
}

/// First `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A network namespace that is deleted, with everything inside it, when the
/// guard drops, unless [`NetNs::persist`] is called.
///
/// Processes inside are terminated first (a process keeps a namespace alive
/// after `ip netns del`), then the links it created, then the namespace.
pub struct NetNs {
    name: String,
    links: Vec<String>,
    armed: bool,
}

impl fmt::Debug for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetNs")
            .field("name", &self.name)
            .field("links", &self.links)
            .field("armed", &self.armed)
            .finish()
    }
}

impl NetNs {
    /// Creates namespace `name` (which must not exist yet), loopback up.
    pub fn create(name: &str) -> Result<Self, CmdError> {
        add_netns(name)?;
        Ok(Self {
            name: name.to_string(),
            links: Vec::new(),
            armed: true,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's path, usable with setns(2).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// A command that runs `program` inside this namespace.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        exec_in(&self.name, program)
    }

    /// Adds a persistent TAP device with an optional address, up.
    pub fn add_tap(
        &mut self,
        name: &str,
        cidr: Option<&str>,
        mtu: Option<u32>,
    ) -> Result<(), CmdError> {
        add_tap(&self.name, name)?;
        self.links.push(name.to_string());
        if let Some(mtu) = mtu {
            set_mtu(&self.name, name, mtu)?;
        }
        if let Some(cidr) = cidr {
            add_addr(&self.name, name, cidr)?;
        }
        link_up(&self.name, name)
    }

    /// Adds a veth pair between this namespace (`name`) and `other`
    /// (`other_name`); deleting either end deletes both.
    pub fn add_veth_to(
        &mut self,
        name: &str,
        other: &NetNs,
        other_name: &str,
    ) -> Result<(), CmdError> {
        add_veth(&self.name, name, &other.name, other_name)?;
        self.links.push(name.to_string());
        Ok(())
    }

    /// Keeps the namespace after the guard is gone; returns its name.
    pub fn persist(mut self) -> String {
        self.armed = false;
        std::mem::take(&mut self.name)
    }

    /// Removes everything now, reporting the first failure.
    pub fn cleanup(mut self) -> Result<(), CmdError> {
        self.armed = false;
        cleanup_netns(&self.name, &self.links)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = cleanup_netns(&self.name, &self.links) {
                eprintln!("warning: cleanup of namespace {}: {e}", self.name);
            }
        }
    }
}

/// Grace period between TERM and KILL in teardown.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Terminates the processes in `ns`, deletes `links` in it, then `ns`.
/// Continues past failures and returns the first.
pub fn cleanup_netns(ns: &str, links: &[String]) -> Result<(), CmdError> {
    let mut first = None;
    if let Err(e) = kill_netns_pids(ns, KILL_GRACE) {
        first.get_or_insert(e);
    }
    for link in links {
        if let Err(e) = del_link(ns, link) {
            first.get_or_insert(e);
        }
    }
    if let Err(e) = del_netns(ns) {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
    }

    fn unique(tag: &str) -> String {
        format!("wlu{}{tag}", std::process::id() % 100_000)
    }

    #[test]
    fn render_quotes_arguments_with_spaces() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi", ""]);
        assert_eq!(render(&cmd), r#"sh -c "echo hi" """#);
    }

    #[test]
    fn failed_command_names_command_and_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
        assert!(msg.contains('3'), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&mut Command::new("/nonexistent/prog")).unwrap_err();
        assert!(matches!(err, CmdError::Spawn { .. }));
    }

    #[test]
    fn vxlan_args() {
        let spec = VxlanSpec {
            name: "vx100".into(),
            vni: 100,
            local: "10.0.0.11".into(),
            remote: "10.0.0.1".into(),
            device: "eth0".into(),
            port: 4789,
            gbp: true,
            mtu: 1450,
        };
        assert_eq!(
            spec.args().join(" "),
            "link add vx100 mtu 1450 type vxlan id 100 local 10.0.0.11 remote 10.0.0.1 dev eth0 dstport 4789 nolearning gbp"
        );
    }

    #[test]
    fn netns_guard_removes_namespace_links_and_processes() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let a_name = unique("a");
        let b_name = unique("b");
        {
            let mut a = NetNs::create(&a_name).unwrap();
            let b = NetNs::create(&b_name).unwrap();
            let mut v6 = b.exec("cat");
            v6.arg("/proc/sys/net/ipv6/conf/all/disable_ipv6");
            assert_eq!(run(&mut v6).unwrap().trim(), "1");
            a.add_veth_to("v0", &b, "v1").unwrap();
            a.add_tap("tp0", Some("10.77.0.1/24"), Some(1400)).unwrap();
            assert!(link_exists(&a_name, "v0"));
            assert!(link_exists(&b_name, "v1"));
            assert!(link_exists(&a_name, "tp0"));
            let sleeper = a.exec("sleep").arg("300").spawn().unwrap();
            // `ip netns exec` enters the namespace after the fork: ask again
            // until it has (a loaded machine takes a moment).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !netns_pids(&a_name).unwrap().contains(&sleeper.id()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "sleeper never entered"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // `sleeper` is deliberately not waited on: the guard must kill it.
            std::mem::forget(sleeper);
        }
        assert!(!netns_exists(&a_name));
        assert!(!netns_exists(&b_name));
        assert!(!list_netns()
            .unwrap()
            .iter()
            .any(|n| n == &a_name || n == &b_name));
    }

    #[test]
    fn removing_missing_things_is_not_an_error() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let name = unique("gone");
        del_netns(&name).unwrap();
        del_link(&name, "nothing0").unwrap();
        assert!(netns_pids(&name).unwrap().is_empty());
    }
}
