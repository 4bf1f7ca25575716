//! Bringing a lab up, running its checks, and tearing it down.
//!
//! `up` records every resource in the run's state file before creating it
//! (see [`Tracker`]) and removes everything again if any step fails;
//! [`teardown`] works from the state file alone, so it also serves
//! `warden-lab down` after the creating process died.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use config::{Check as LabCheck, Host, Lab, Link};

use crate::checks::{self, Check, CheckEnv, CheckSpec};
use crate::netns::{self, exec_in, CmdError, OffloadError, KILL_GRACE, NETNS_DIR};
use crate::process::{self, Pid};
use crate::report::{self, CheckResult, Report};
use crate::state::{self, ns_name, RunState, StateError, TrackError, Tracker};

/// The default topology, run when no file is given.
pub const DEFAULT_LAB: &str = include_str!("../examples/gateway.toml");
/// Name of the default topology in messages and state files.
pub const DEFAULT_LAB_ORIGIN: &str = "embedded:gateway.toml";

/// Name of the bridge inside each switch namespace.
const BRIDGE: &str = "br0";
/// VXLAN over IPv4: outer Ethernet excluded, 20 + 8 + 8 + 14 bytes.
const VXLAN_OVERHEAD: u32 = 50;
/// Interface MTU when the file gives none.
const DEFAULT_MTU: u32 = 1500;

/// Errors of lab operations.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab file does not validate.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The lab file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The lab file is not TOML (after it validated: should not happen).
    #[error("{origin}: {message}")]
    Toml { origin: String, message: String },
    /// A bad `--prefix`.
    #[error("bad prefix {0:?}: use 2 to 12 characters a-z 0-9, starting with a letter")]
    Prefix(String),
    /// A run with this prefix exists already.
    #[error("prefix {0} is in use (namespace or state directory exists)")]
    PrefixInUse(String),
    /// State file trouble.
    #[error(transparent)]
    State(#[from] StateError),
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Checksum offload could not be turned off.
    #[error(transparent)]
    Offload(#[from] OffloadError),
    /// A file in the state directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A warden did not come up.
    #[error(
        "warden {name} did not become ready: {why}\n  command: {command}\n  log {log}:\n{tail}"
    )]
    WardenNotReady {
        name: String,
        why: String,
        command: String,
        log: PathBuf,
        tail: String,
    },
    /// The warden binary is missing.
    #[error("warden binary not found at {0} (build it with `cargo build -p dataplane`, or set WARDEN_BIN)")]
    NoWarden(PathBuf),
    /// Teardown left something behind.
    #[error("teardown of {prefix} incomplete:\n  {}", problems.join("\n  "))]
    Teardown {
        prefix: String,
        problems: Vec<String>,
    },
    /// `down` found nothing to do.
    #[error("no running lab matches {0}")]
    NoRuns(String),
    /// No warden of that name runs in this lab.
    #[error("no running warden {0} in this lab")]
    NoSuchWarden(String),
}

impl From<TrackError> for LabError {
    fn from(e: TrackError) -> Self {
        match e {
            TrackError::State(e) => Self::State(e),
            TrackError::Cmd(e) => Self::Cmd(e),
        }
    }
}

/// A lab file's text and where it came from.
#[derive(Debug, Clone)]
pub struct LabSource {
    pub text: String,
    /// Names the text in error messages.
    pub origin: String,
    /// Identifies the file across runs (`down FILE` matches on it).
    pub key: String,
}

impl LabSource {
    /// Reads a lab file.
    pub fn from_file(path: &Path) -> Result<Self, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            text,
            origin: path.display().to_string(),
            key: Self::key_of(path),
        })
    }

    /// The embedded default topology.
    pub fn embedded() -> Self {
        Self {
            text: DEFAULT_LAB.to_string(),
            origin: DEFAULT_LAB_ORIGIN.to_string(),
            key: DEFAULT_LAB_ORIGIN.to_string(),
        }
    }

    /// The key that runs of the file at `path` are recorded under.
    pub fn key_of(path: &Path) -> String {
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    }
}

/// How to bring a lab up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace prefix; generated when `None`.
    pub prefix: Option<String>,
    /// The warden-lab binary, re-run inside namespaces for TCP checks.
    pub self_exe: PathBuf,
    /// The warden binary.
    pub warden_bin: PathBuf,
    /// How long a warden may take to answer on its control socket.
    pub ready_timeout: Duration,
}

/// A fresh prefix: `wl` and 6 hex digits from a randomly keyed hash of the
/// PID and the time.
pub fn generate_prefix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    format!("wl{:06x}", h.finish() & 0xff_ffff)
}

/// Checks a user-chosen prefix.
pub fn validate_prefix(p: &str) -> Result<(), LabError> {
    let ok = (2..=12).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::Prefix(p.to_string()))
    }
}

fn prefix_in_use(prefix: &str) -> bool {
    let dirs = state::base_dirs().iter().any(|b| b.join(prefix).exists());
    let nss = netns::list_netns()
        .unwrap_or_default()
        .iter()
        .any(|n| n.strip_prefix(prefix).is_some_and(|r| r.starts_with('-')));
    dirs || nss
}

/// A lab that is up. Dropping it tears it down, unless it was
/// [`RunningLab::detach`]ed or [`RunningLab::teardown`] ran.
#[derive(Debug)]
pub struct RunningLab {
    tracker: Tracker,
    lab: Lab,
    env: CheckEnv,
    /// Running wardens by name, with the command line to start them again.
    wardens: Vec<WardenProc>,
    armed: bool,
}

/// A warden the lab started.
#[derive(Debug)]
struct WardenProc {
    name: String,
    host: String,
    config: PathBuf,
    child: Child,
}

/// What [`RunningLab::restart_warden`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// PID of the warden that was killed.
    pub old_pid: u32,
    /// PID of the warden that replaced it.
    pub new_pid: u32,
    /// From the kill until the new warden answered on its control socket.
    pub down_for: Duration,
}

/// Parses the lab, creates its state, and builds it. `on_tracker` gets the
/// run's tracker before the first resource exists (the binary hands it to
/// its signal handler).
pub fn up(
    source: &LabSource,
    opts: &Options,
    on_tracker: &dyn Fn(&Tracker),
) -> Result<RunningLab, LabError> {
    let lab = config::parse_lab(&source.text, &source.origin)?;
    let raw: toml::Table = source
        .text
        .parse()
        .map_err(|e: toml::de::Error| LabError::Toml {
            origin: source.origin.clone(),
            message: e.message().to_string(),
        })?;
    if !lab.wardens.is_empty() && !opts.warden_bin.is_file() {
        return Err(LabError::NoWarden(opts.warden_bin.clone()));
    }
    if needs_ethtool(&lab) && !netns::has_ethtool() {
        return Err(OffloadError::NoEthtool.into());
    }
    let prefix = match &opts.prefix {
        Some(p) => {
            validate_prefix(p)?;
            if prefix_in_use(p) {
                return Err(LabError::PrefixInUse(p.clone()));
            }
            p.clone()
        }
        None => loop {
            let p = generate_prefix();
            if !prefix_in_use(&p) {
                break p;
            }
        },
    };
    let state = RunState::create(&prefix, &source.key, &lab.name)?;
    let tracker = Tracker::new(state);
    on_tracker(&tracker);
    let namespaces: BTreeMap<String, String> = lab
        .hosts
        .iter()
        .map(|h| (h.name.clone(), ns_name(&prefix, &h.name)))
        .collect();
    let dir = tracker.snapshot().dir;
    let sockets = lab
        .wardens
        .iter()
        .map(|w| (w.name.clone(), dir.join(format!("{}.sock", w.name))))
        .collect();
    let mut running = RunningLab {
        tracker: tracker.clone(),
        env: CheckEnv {
            tracker,
            self_exe: opts.self_exe.clone(),
            warden_bin: opts.warden_bin.clone(),
            namespaces,
            sockets,
            seed: 0x5eed_0000,
        },
        lab,
        wardens: Vec::new(),
        armed: true,
    };
    // On error `running` drops here and tears everything down.
    running.build(&raw, opts)?;
    Ok(running)
}

fn needs_ethtool(lab: &Lab) -> bool {
    lab.hosts.iter().any(|h| !h.interfaces.is_empty())
}

/// Switch-side name of the veth for `host`'s interface `iface`: readable
/// when short enough, else numbered.
fn switch_port_name(host: &str, iface: &str, n: usize) -> String {
    let name = format!("{host}-{iface}");
    if name.len() <= netns::IFNAME_MAX {
        name
    } else {
        format!("port{n}")
    }
}

impl RunningLab {
    /// The run's prefix.
    pub fn prefix(&self) -> String {
        self.tracker.lock().prefix.clone()
    }

    /// The run's state (a copy).
    pub fn state(&self) -> RunState {
        self.tracker.snapshot()
    }

    /// The lab as validated.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    fn ns(&self, name: &str) -> String {
        ns_name(&self.prefix(), name)
    }

    fn build(&mut self, raw: &toml::Table, opts: &Options) -> Result<(), LabError> {
        let t = self.tracker.clone();
        for sw in &self.lab.switches {
            let ns = self.ns(&sw.name);
            t.add_netns(&ns)?;
            t.add_link(&ns, BRIDGE, || netns::add_bridge(&ns, BRIDGE))?;
        }
        for host in &self.lab.hosts {
            t.add_netns(&self.ns(&host.name))?;
        }
        let mut port_no = 0;
        let mut peered = BTreeSet::new();
        for host in &self.lab.hosts {
            let ns = self.ns(&host.name);
            for ifc in &host.interfaces {
                let mtu = ifc.mtu.map(u32::from);
                match &ifc.link {
                    Link::Switch(sw) => {
                        let sw_ns = self.ns(sw);
                        let port = switch_port_name(&host.name, &ifc.name, port_no);
                        port_no += 1;
                        t.add_link(&ns, &ifc.name, || {
                            netns::add_veth(&ns, &ifc.name, &sw_ns, &port)
                        })?;
                        if let Some(mtu) = mtu {
                            netns::set_mtu(&sw_ns, &port, mtu)?;
                        }
                        netns::set_master(&sw_ns, &port, BRIDGE)?;
                        netns::disable_tx_offload(&sw_ns, &port)?;
                        netns::link_up(&sw_ns, &port)?;
                    }
                    Link::Peer {
                        host: peer,
                        interface,
                    } => {
                        let key = |a: &str, b: &str, c: &str, d: &str| {
                            if (a, b) < (c, d) {
                                format!("{a}:{b}={c}:{d}")
                            } else {
                                format!("{c}:{d}={a}:{b}")
                            }
                        };
                        if peered.insert(key(&host.name, &ifc.name, peer, interface)) {
                            let peer_ns = self.ns(peer);
                            t.add_link(&ns, &ifc.name, || {
                                netns::add_veth(&ns, &ifc.name, &peer_ns, interface)
                            })?;
                        }
                    }
                }
                configure_link(
                    &ns,
                    &ifc.name,
                    mtu,
                    ifc.mac.map(|m| m.to_string()),
                    ifc.address.map(|a| a.to_string()),
                )?;
                netns::disable_tx_offload(&ns, &ifc.name)?;
            }
            for tap in &host.taps {
                t.add_link(&ns, &tap.name, || netns::add_tap(&ns, &tap.name))?;
                configure_link(
                    &ns,
                    &tap.name,
                    tap.mtu.map(u32::from),
                    tap.mac.map(|m| m.to_string()),
                    tap.address.map(|a| a.to_string()),
                )?;
            }
            for vx in &host.vxlans {
                let spec = netns::VxlanSpec {
                    name: vx.name.clone(),
                    vni: vx.vni.get(),
                    local: vx.local.to_string(),
                    remote: vx.remote.to_string(),
                    device: vx.device.clone(),
                    port: vx.port,
                    gbp: vx.gbp,
                    mtu: device_mtu(host, &vx.device).saturating_sub(VXLAN_OVERHEAD),
                };
                t.add_link(&ns, &vx.name, || netns::add_vxlan(&ns, &spec))?;
                configure_link(
                    &ns,
                    &vx.name,
                    None,
                    vx.mac.map(|m| m.to_string()),
                    vx.address.map(|a| a.to_string()),
                )?;
            }
        }
        let wardens: Vec<(String, String)> = self
            .lab
            .wardens
            .iter()
            .map(|w| (w.name.clone(), w.host.clone()))
            .collect();
        for (name, host) in &wardens {
            self.start_warden(raw, name, host, opts)?;
        }
        // Only once every warden runs can wardens that peer with each other
        // resolve one another.
        self.wait_for_peers(opts);
        for host in &self.lab.hosts {
            let ns = self.ns(&host.name);
            for r in &host.routes {
                let dest = if r.destination.prefix_len() == 0 {
                    "default".to_string()
                } else {
                    r.destination.to_string()
                };
                netns::add_route(&ns, &dest, &r.via.to_string())?;
            }
        }
        Ok(())
    }

    /// Wait (up to the ready timeout) until every warden has resolved the
    /// next hop of each of its peers, so the first checks do not race the
    /// underlay ARP; warn about the peers that stay unresolved.
    fn wait_for_peers(&self, opts: &Options) {
        let deadline = Instant::now() + opts.ready_timeout;
        let st = self.tracker.snapshot();
        for w in &self.lab.wardens {
            let socket = st.dir.join(format!("{}.sock", w.name));
            loop {
                match checks::warden_stats(&opts.warden_bin, &socket) {
                    Ok(stats) if peers_resolved(&stats) => break,
                    Ok(stats) if Instant::now() >= deadline => {
                        eprintln!(
                            "warning: warden {}: peers still unresolved after {} s: {}",
                            w.name,
                            opts.ready_timeout.as_secs(),
                            unresolved_peers(&stats).join(", ")
                        );
                        break;
                    }
                    Err(_) if Instant::now() >= deadline => break,
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }

    fn start_warden(
        &mut self,
        raw: &toml::Table,
        name: &str,
        host: &str,
        opts: &Options,
    ) -> Result<(), LabError> {
        let st = self.tracker.snapshot();
        let socket = st.dir.join(format!("{name}.sock"));
        let table = warden_table(raw, name).ok_or_else(|| LabError::Toml {
            origin: st.source.clone(),
            message: format!("no [warden.config] for warden {name}"),
        })?;
        let mut text =
            rewrite_warden_config(table, name, &socket, &st.prefix, &self.env.namespaces);
        // `secret_file = "lab:NAME"`: a key made for this run, shared by
        // every warden of the lab that names it.
        for secret in lab_secrets(&text) {
            let path = st.dir.join("secrets").join(format!("{secret}.key"));
            ensure_secret(&path).map_err(|source| LabError::Write {
                path: path.clone(),
                source,
            })?;
            text = text.replace(
                &format!("\"lab:{secret}\""),
                &format!("\"{}\"", path.display()),
            );
        }
        let cfg_path = st.dir.join(format!("{name}.toml"));
        std::fs::write(&cfg_path, text).map_err(|source| LabError::Write {
            path: cfg_path.clone(),
            source,
        })?;
        self.spawn_warden(name, host, cfg_path, false, opts)
    }

    /// Starts warden `name` in `host` with config file `config` and waits
    /// until its control socket answers; the log is started afresh or,
    /// with `append`, continued (a restart).
    fn spawn_warden(
        &mut self,
        name: &str,
        host: &str,
        config: PathBuf,
        append: bool,
        opts: &Options,
    ) -> Result<(), LabError> {
        let st = self.tracker.snapshot();
        let socket = st.dir.join(format!("{name}.sock"));
        let log_path = st.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&log_path)
            .map_err(|source| LabError::Write {
                path: log_path.clone(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| LabError::Write {
            path: log_path.clone(),
            source,
        })?;
        let mut cmd = exec_in(&st.ns(host), &opts.warden_bin);
        cmd.arg("run")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let command = netns::render(&cmd);
        let child = self.tracker.spawn(&mut cmd, &format!("warden {name}"))?;
        let mut proc_ = WardenProc {
            name: name.to_string(),
            host: host.to_string(),
            config,
            child,
        };
        let deadline = Instant::now() + opts.ready_timeout;
        let not_ready = |why: String| LabError::WardenNotReady {
            name: name.to_string(),
            why,
            command: command.clone(),
            log: log_path.clone(),
            tail: process::tail(&log_path, 20),
        };
        loop {
            if let Ok(Some(status)) = proc_.child.try_wait() {
                let _ = self.tracker.release(proc_.child.id());
                return Err(not_ready(format!("it exited ({status})")));
            }
            let answer = if socket.exists() {
                checks::warden_stats(&opts.warden_bin, &socket)
            } else {
                Err(format!("no control socket {}", socket.display()))
            };
            match answer {
                // Ready once every peer VTEP's next hop is resolved, so the
                // first checks do not race warden's underlay ARP.
                Ok(_) => break,
                Err(why) if Instant::now() >= deadline => {
                    self.wardens.push(proc_);
                    return Err(not_ready(format!(
                        "no answer within {} s: {why}",
                        opts.ready_timeout.as_secs()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.wardens.push(proc_);
        Ok(())
    }

    /// PID of the running warden `name`.
    pub fn warden_pid(&self, name: &str) -> Option<u32> {
        self.wardens
            .iter()
            .find(|w| w.name == name)
            .map(|w| w.child.id())
    }

    /// Kills warden `name` with SIGKILL, as a crash would, and starts it
    /// again with the same command and config, tracked in the run's state
    /// like the original; returns once the new one answers on its control
    /// socket (within `ready_timeout`). Its log continues the old one.
    pub fn restart_warden(
        &mut self,
        name: &str,
        ready_timeout: Duration,
    ) -> Result<Restart, LabError> {
        let at = self
            .wardens
            .iter()
            .position(|w| w.name == name)
            .ok_or_else(|| LabError::NoSuchWarden(name.to_string()))?;
        let mut old = self.wardens.remove(at);
        let old_pid = old.child.id();
        let killed = Instant::now();
        let _ = crate::sys::kill(old_pid, crate::Signal::Kill);
        let _ = old.child.wait();
        let _ = self.tracker.release(old_pid);
        let log_path = self.tracker.snapshot().dir.join(format!("{name}.log"));
        if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(&log_path) {
            use std::io::Write as _;
            let _ = writeln!(
                log,
                "--- warden-lab: warden {name} (pid {old_pid}) killed with SIGKILL, starting it again ---"
            );
        }
        let opts = Options {
            prefix: None,
            self_exe: self.env.self_exe.clone(),
            warden_bin: self.env.warden_bin.clone(),
            ready_timeout,
        };
        self.spawn_warden(&old.name, &old.host, old.config, true, &opts)?;
        let new_pid = self.warden_pid(name).unwrap_or(0);
        Ok(Restart {
            old_pid,
            new_pid,
            down_for: killed.elapsed(),
        })
    }

    /// The checks of the lab, resolved.
    pub fn checks(&self) -> Vec<Check> {
        self.lab.checks.iter().map(convert_check).collect()
    }

    /// Runs every check in order, printing a progress line for each to `out`.
    pub fn run_checks(&self, out: &mut dyn std::io::Write) -> Report {
        let checks = self.checks();
        let total = checks.len();
        let mut report = Report {
            lab: self.lab.name.clone(),
            results: Vec::new(),
        };
        for (i, check) in checks.iter().enumerate() {
            let description = check.describe();
            let _ = write!(out, "{}", report::progress_prefix(i, total, &description));
            let _ = out.flush();
            let outcome = checks::run_check(&self.env, i, check);
            let _ = writeln!(out, "{}", report::outcome_text(&outcome));
            report.results.push(CheckResult {
                description,
                outcome,
            });
        }
        report
    }

    /// Paths of the wardens' log files.
    pub fn warden_logs(&self) -> Vec<(String, PathBuf)> {
        let dir = self.tracker.snapshot().dir;
        self.lab
            .wardens
            .iter()
            .map(|w| (w.name.clone(), dir.join(format!("{}.log", w.name))))
            .collect()
    }

    /// Leaves the lab running; returns its state.
    pub fn detach(mut self) -> RunState {
        self.armed = false;
        self.tracker.snapshot()
    }

    /// Removes everything now.
    pub fn teardown(mut self) -> Result<(), LabError> {
        self.armed = false;
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), LabError> {
        let result = {
            let state = self.tracker.lock();
            teardown(&state)
        };
        for w in &mut self.wardens {
            let _ = w.child.try_wait();
        }
        result
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.teardown_inner() {
                eprintln!("warning: {e}");
            }
        }
    }
}

fn configure_link(
    ns: &str,
    dev: &str,
    mtu: Option<u32>,
    mac: Option<String>,
    cidr: Option<String>,
) -> Result<(), CmdError> {
    if let Some(mtu) = mtu {
        netns::set_mtu(ns, dev, mtu)?;
    }
    if let Some(mac) = mac {
        netns::set_mac(ns, dev, &mac)?;
    }
    if let Some(cidr) = cidr {
        netns::add_addr(ns, dev, &cidr)?;
    }
    netns::link_up(ns, dev)
}

fn device_mtu(host: &Host, dev: &str) -> u32 {
    let ifc = host
        .interfaces
        .iter()
        .find(|i| i.name == dev)
        .and_then(|i| i.mtu);
    let tap = host.taps.iter().find(|t| t.name == dev).and_then(|t| t.mtu);
    ifc.or(tap).map_or(DEFAULT_MTU, u32::from)
}

/// The raw `[warden.config]` table of warden `name` in the lab file.
fn warden_table<'a>(raw: &'a toml::Table, name: &str) -> Option<&'a toml::Table> {
    raw.get("warden")?
        .as_array()?
        .iter()
        .filter_map(toml::Value::as_table)
        .find(|w| w.get("name").and_then(toml::Value::as_str) == Some(name))?
        .get("config")?
        .as_table()
}

/// The names used as `"lab:NAME"` in a config text.
fn lab_secrets(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split("\"lab:")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Create a 32-byte random secret at `path` unless it exists (mode 0600).
fn ensure_secret(path: &Path) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, &key)
}

/// The warden's config as the lab runs it: its control socket in the run's
/// directory, its instance named after the `[[warden]]`, and each TAP
/// port's `netns = "<host>"` replaced by that host's namespace path.
pub fn rewrite_warden_config(
    table: &toml::Table,
    name: &str,
    socket: &Path,
    prefix: &str,
    hosts: &BTreeMap<String, String>,
) -> String {
    let mut table = table.clone();
    let instance = table
        .entry("instance")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(inst) = instance.as_table_mut() {
        inst.entry("name")
            .or_insert_with(|| toml::Value::String(name.to_string()));
        inst.insert(
            "control_socket".into(),
            toml::Value::String(socket.display().to_string()),
        );
    }
    // A relative flow log path lives in the run's directory (next to the
    // control socket), so that concurrent runs of a lab never share one.
    if let (Some(dir), Some(fl)) = (
        socket.parent(),
        table
            .get_mut("flow_log")
            .and_then(toml::Value::as_table_mut),
    ) {
        if let Some(p) = fl.get("path").and_then(toml::Value::as_str) {
            if Path::new(p).is_relative() {
                let abs = dir.join(p).display().to_string();
                fl.insert("path".into(), toml::Value::String(abs));
            }
        }
    }
    if let Some(ports) = table.get_mut("port").and_then(toml::Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(toml::Value::as_table_mut) {
            let Some(ns) = port.get("netns").and_then(toml::Value::as_str) else {
                continue;
            };
            if hosts.contains_key(ns) {
                let path = format!("{NETNS_DIR}/{}", ns_name(prefix, ns));
                port.insert("netns".into(), toml::Value::String(path));
            }
        }
    }
    toml::to_string(&table).unwrap_or_default()
}

fn convert_check(c: &LabCheck) -> Check {
    let spec = match c {
        LabCheck::Ping {
            from, to, count, ..
        } => CheckSpec::Ping {
            from: from.clone(),
            to: to.to_string(),
            count: *count,
        },
        LabCheck::Tcp {
            from,
            to,
            address,
            port,
            bytes,
            ..
        } => CheckSpec::Tcp {
            from: from.clone(),
            to: to.clone(),
            address: IpAddr::V4(*address),
            port: *port,
            bytes: *bytes,
        },
        LabCheck::Udp {
            from,
            to,
            address,
            port,
            count,
            size,
            ..
        } => CheckSpec::Udp {
            from: from.clone(),
            to: to.clone(),
            address: IpAddr::V4(*address),
            port: *port,
            count: *count,
            size: *size,
        },
        LabCheck::Command {
            host,
            run,
            expect_status,
            timeout_secs,
            ..
        } => CheckSpec::Command {
            host: host.clone(),
            run: run.clone(),
            expect_status: *expect_status,
            timeout: Duration::from_secs(u64::from(*timeout_secs)),
        },
        LabCheck::Stats { warden, expect, .. } => CheckSpec::Stats {
            warden: warden.clone(),
            expect: expect.clone(),
        },
    };
    Check {
        name: c.name().map(str::to_string),
        spec,
    }
}

/// Removes everything `state` lists, and every namespace carrying its
/// prefix: processes (recorded PIDs, then whatever still runs in its
/// namespaces), links, namespaces, then the state directory. Continues past
/// failures and reports them together.
pub fn teardown(state: &RunState) -> Result<(), LabError> {
    let mut problems = Vec::new();
    // The creating warden-lab, if it still runs (a `run` in progress):
    // stop it first so that it creates nothing more.
    if let Some(owner) = state.owner.filter(|o| o.pid != std::process::id()) {
        process::terminate_all(&[owner], KILL_GRACE);
    }
    let procs: Vec<Pid> = state.processes.iter().map(|p| p.pid).collect();
    process::terminate_all(&procs, KILL_GRACE);

    let mut namespaces: Vec<String> = state
        .namespaces
        .iter()
        .filter(|n| state.owns_ns(n))
        .cloned()
        .collect();
    match netns::list_netns() {
        Ok(all) => {
            for ns in all {
                if state.owns_ns(&ns) && !namespaces.contains(&ns) {
                    namespaces.push(ns);
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    for ns in &namespaces {
        match netns::kill_netns_pids(ns, KILL_GRACE) {
            Ok(pids) if !pids.is_empty() => {
                eprintln!("note: killed leftover processes {pids:?} in {ns}");
            }
            Ok(_) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    for link in state.links.iter().rev().filter(|l| state.owns_ns(&l.ns)) {
        if let Err(e) = netns::del_link(&link.ns, &link.name) {
            problems.push(e.to_string());
        }
    }
    for ns in namespaces.iter().rev() {
        if let Err(e) = netns::del_netns(ns) {
            problems.push(e.to_string());
        }
    }
    let in_base = state::base_dirs()
        .iter()
        .any(|b| state.dir.parent() == Some(b.as_path()));
    let named = state
        .dir
        .file_name()
        .is_some_and(|n| n == state.prefix.as_str());
    if in_base && named && state.dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&state.dir) {
            problems.push(format!("cannot remove {}: {e}", state.dir.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LabError::Teardown {
            prefix: state.prefix.clone(),
            problems,
        })
    }
}

/// Which runs `down` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Runs of this lab file (its [`LabSource::key`]) whose owner is gone.
    Source(String),
    /// The run with this prefix, whoever owns it.
    Prefix(String),
    /// Every run whose owner is gone, of any file.
    All,
}

/// What `down` did: runs removed, and runs it left alone because the
/// warden-lab process that owns them still runs (prefix, owner pid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    pub removed: Vec<String>,
    pub kept: Vec<(String, u32)>,
}

/// The owner of `state` if it still runs (and is not this process).
fn live_owner(state: &RunState) -> Option<u32> {
    state
        .owner
        .filter(|o| o.pid != std::process::id() && o.is_alive())
        .map(|o| o.pid)
}

/// Tears down the selected runs. A run selected by its file (or `All`)
/// whose owner still runs is someone's lab in use (a `run` in progress, a
/// test suite): it is kept and reported; only `Prefix` removes it. A state
/// directory whose state file is unreadable is reported, not touched.
pub fn down_report(selector: &Selector) -> Result<DownReport, LabError> {
    let mut report = DownReport::default();
    let mut problems = Vec::new();
    for (dir, state) in state::list_runs() {
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                if *selector == Selector::All {
                    problems.push(format!("{}: {e}", dir.display()));
                }
                continue;
            }
        };
        let selected = match selector {
            Selector::Source(key) => &state.source == key,
            Selector::Prefix(p) => &state.prefix == p,
            Selector::All => true,
        };
        if !selected {
            continue;
        }
        if !matches!(selector, Selector::Prefix(_)) {
            if let Some(pid) = live_owner(&state) {
                report.kept.push((state.prefix.clone(), pid));
                continue;
            }
        }
        match teardown(&state) {
            Ok(()) => report.removed.push(state.prefix.clone()),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(LabError::Teardown {
            prefix: report.removed.join(","),
            problems,
        });
    }
    if report.removed.is_empty() && report.kept.is_empty() {
        let what = match selector {
            Selector::Source(k) => k.clone(),
            Selector::Prefix(p) => format!("prefix {p}"),
            Selector::All => "--all".to_string(),
        };
        return Err(LabError::NoRuns(what));
    }
    Ok(report)
}

/// [`down_report`], the prefixes removed.
pub fn down(selector: &Selector) -> Result<Vec<String>, LabError> {
    down_report(selector).map(|r| r.removed)
}

/// Peers in a `warden stats --json` answer whose next-hop MAC is unknown.
fn unresolved_peers(stats: &serde_json::Value) -> Vec<String> {
    stats
        .get("peers")
        .and_then(|p| p.as_object())
        .map(|peers| {
            peers
                .iter()
                .filter(|(_, p)| p.get("next_hop_mac").is_none_or(|m| m.is_null()))
                .map(|(addr, _)| addr.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn peers_resolved(stats: &serde_json::Value) -> bool {
    unresolved_peers(stats).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = generate_prefix();
        assert_eq!(p.len(), 8);
        assert!(p.starts_with("wl"));
        validate_prefix(&p).unwrap();
        assert!(validate_prefix("a").is_err());
        assert!(validate_prefix("1abc").is_err());
        assert!(validate_prefix("ab-c").is_err());
        assert!(validate_prefix("abcdefghijklm").is_err());
        assert!(validate_prefix("Ab").is_err());
    }

    #[test]
    fn switch_port_names_fit() {
        assert_eq!(switch_port_name("a1", "eth0", 3), "a1-eth0");
        let long = switch_port_name("averyverylonghost", "eth0", 3);
        assert_eq!(long, "port3");
        assert!(long.len() <= netns::IFNAME_MAX);
    }

    #[test]
    fn rewrites_socket_name_and_tap_netns() {
        let raw: toml::Table = r#"
            [[warden]]
            name = "gw"
            host = "gw"
              [warden.config.underlay]
              port = "uplink"
              address = "10.0.0.1/24"
              [[warden.config.port]]
              name = "uplink"
              backend = "af_packet"
              interface = "eth0"
              [[warden.config.port]]
              name = "web"
              backend = "tap"
              interface = "wl0"
              netns = "w1"
              vni = 300
              [[warden.config.port]]
              name = "other"
              backend = "tap"
              interface = "wl1"
              netns = "/var/run/netns/elsewhere"
              vni = 300
        "#
        .parse()
        .unwrap();
        let table = warden_table(&raw, "gw").unwrap();
        assert!(warden_table(&raw, "nope").is_none());
        let hosts: BTreeMap<String, String> = [("w1".to_string(), "wlx-w1".to_string())].into();
        let text = rewrite_warden_config(
            table,
            "gw",
            Path::new("/run/warden-lab/wlx/gw.sock"),
            "wlx",
            &hosts,
        );
        let out: toml::Table = text.parse().unwrap();
        assert_eq!(
            out["instance"]["control_socket"].as_str(),
            Some("/run/warden-lab/wlx/gw.sock")
        );
        assert_eq!(out["instance"]["name"].as_str(), Some("gw"));
        let ports = out["port"].as_array().unwrap();
        assert_eq!(ports[1]["netns"].as_str(), Some("/var/run/netns/wlx-w1"));
        assert_eq!(ports[2]["netns"].as_str(), Some("/var/run/netns/elsewhere"));
        assert!(ports[0].get("netns").is_none());
        assert_eq!(out["underlay"]["address"].as_str(), Some("10.0.0.1/24"));
    }

    #[test]
    fn default_lab_validates() {
        let lab = config::parse_lab(DEFAULT_LAB, DEFAULT_LAB_ORIGIN).unwrap();
        assert_eq!(lab.name, "gateway");
        assert!(lab
            .checks
            .iter()
            .any(|c| matches!(c, LabCheck::Stats { .. })));
        assert!(lab.checks.iter().any(|c| matches!(c, LabCheck::Tcp { .. })));
    }
}
