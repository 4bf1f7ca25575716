//! The `warden` command: run a switch instance, check a config, read the
//! counters of a running instance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use config::{Backend, FileKind, WardenConfig};
use dataplane::control::{self, ControlServer};
use dataplane::counters::Counters;
use dataplane::engine::Engine;
use dataplane::port::{AfPacketPort, Port, TapPort};
use dataplane::stats::Names;
use dataplane::worker;
use dataplane::{out, outln};

#[derive(Parser, Debug)]
#[command(
    name = "warden",
    version = dataplane::VERSION,
    about = "identity-aware poll-mode VXLAN switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a switch instance from a config file until SIGINT/SIGTERM.
    Run {
        /// The instance config (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a config or lab file; errors print as FILE:LINE:COLUMN: message.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the counters of a running instance (since start, or since the
    /// last `--reset`); with --interval, rates over each interval.
    Stats {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Every SECONDS, print packets/s, bytes/s, drops/s and busy cycles
        /// per packet over the interval, until interrupted (or --count).
        #[arg(short, long, value_name = "SECONDS")]
        interval: Option<f64>,
        /// With --interval: stop after this many intervals.
        #[arg(long, requires = "interval")]
        count: Option<u64>,
        /// Make `warden stats` count from now on, for every client (the
        /// instance keeps the totals as a baseline; the workers' counters
        /// are never written by anyone but the workers).
        #[arg(long, conflicts_with_all = ["interval", "total"])]
        reset: bool,
        /// Totals since start, ignoring a --reset.
        #[arg(long)]
        total: bool,
    },
    /// Print the forwarding database of a running instance: (VNI, MAC) ->
    /// port or peer, static or learned, age.
    Fdb {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the L3 gateway's neighbors (inner ARP table) of a running instance.
    Neighbors {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the live flows of a running instance: origin, where they went,
    /// state, identities, how they were obtained, verdict and counters; and
    /// the most recent flows denied at their first packet.
    Flows {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FlowFilter,
    },
    /// Workload identity tools.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// Which flows `warden flows` shows.
#[derive(clap::Args, Debug, Default)]
struct FlowFilter {
    /// Only flows with this identity at either end (a name, `*` globs).
    #[arg(long, value_name = "NAME")]
    identity: Option<String>,
    /// Only flows with this verdict (allow, deny, reject, reply,
    /// would_deny, learn, gateway, no_policy, or `peer` for flows whose
    /// verdict the peer's warden makes).
    #[arg(long)]
    verdict: Option<String>,
    /// Only flows with this port number at either end.
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Print, as a [[policy.set]] in enforce mode, an allow-list that admits
    /// exactly the flows a running instance recorded in learn mode.
    Learned {
        /// The instance config (its identity documents name the identities;
        /// its control socket is asked unless --socket is given).
        #[arg(short, long)]
        config: PathBuf,
        /// The control socket of the instance.
        #[arg(short, long)]
        socket: Option<PathBuf>,
        /// Name of the proposed set.
        #[arg(long, default_value = "learned")]
        set: String,
    },
}

#[derive(Subcommand, Debug)]
enum IdentityCommand {
    /// Measure a workload's executable and print its identity document as a
    /// [[identity.document]] table for the config, its 32-bit id as a comment.
    Attest {
        /// The workload's executable (or image) to hash.
        #[arg(long)]
        exe: PathBuf,
        /// The identity name, such as spiffe://lab/ns/payments/sa/api.
        #[arg(long)]
        name: String,
        /// A label KEY=VALUE; repeat for more.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// The host the workload runs on.
        #[arg(long)]
        host_id: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { files } => check(&files),
        Command::Stats {
            socket,
            config,
            json,
            interval,
            count,
            reset,
            total,
        } => stats(
            socket,
            config,
            &StatsOpts {
                json,
                interval,
                count,
                reset,
                total,
            },
        ),
        Command::Fdb {
            socket,
            config,
            json,
        } => fdb(socket, config, json),
        Command::Neighbors {
            socket,
            config,
            json,
        } => neighbors(socket, config, json),
        Command::Flows {
            socket,
            config,
            json,
            filter,
        } => flows(socket, config, json, &filter),
        Command::Identity {
            command:
                IdentityCommand::Attest {
                    exe,
                    name,
                    labels,
                    host_id,
                },
        } => attest(&exe, name, &labels, host_id),
        Command::Policy {
            command:
                PolicyCommand::Learned {
                    config,
                    socket,
                    set,
                },
        } => learned(&config, socket, &set),
    }
}

/// `warden policy learned`: the learn table of a running instance as a
/// policy set. Identities are named from the config's documents.
fn learned(config: &Path, socket: Option<PathBuf>, set: &str) -> ExitCode {
    let cfg = match config::load_warden(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let path = socket.unwrap_or_else(|| cfg.instance.control_socket.clone());
    let report = match control::query_learned(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let ids: Vec<u32> = cfg.documents.iter().map(|d| d.id().0).collect();
    let mut skipped = 0usize;
    let flows: Vec<policy::LearnedFlow> = report
        .records
        .iter()
        .filter_map(|r| {
            let f = r.to_learned_flow(&ids);
            if f.is_none() {
                skipped += 1;
            }
            f
        })
        .collect();
    outln!(
        "# warden policy learned: {} flows recorded by {}",
        flows.len(),
        cfg.instance.name
    );
    if report.dropped > 0 {
        outln!(
            "# WARNING: {} flows were not recorded (the learn table was full): this list is incomplete",
            report.dropped
        );
    }
    if skipped > 0 {
        outln!(
            "# {skipped} flows skipped: an end with neither a known identity nor an IPv4 address"
        );
    }
    out!("{}", policy::propose(&flows, &cfg.documents, set));
    ExitCode::SUCCESS
}

/// `warden identity attest`: the document is checked with the config's own
/// rules first, so what it prints always pastes into a config that checks.
fn attest(exe: &Path, name: String, labels: &[String], host_id: Option<String>) -> ExitCode {
    let mut doc = config::IdentityDoc {
        name,
        host_id,
        ..Default::default()
    };
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            eprintln!("warden: label {l:?} has no `=`, expected KEY=VALUE");
            return ExitCode::FAILURE;
        };
        if doc.labels.insert(k.to_owned(), v.to_owned()).is_some() {
            eprintln!("warden: label `{k}` given twice");
            return ExitCode::FAILURE;
        }
    }
    if let Some(problem) = config::document_problem(&doc) {
        eprintln!("warden: {problem}");
        return ExitCode::FAILURE;
    }
    match identity::attest::sha256_file(exe) {
        Ok(h) => doc.exe_sha256 = Some(h),
        Err(e) => {
            eprintln!("warden: cannot read {}: {e}", exe.display());
            return ExitCode::FAILURE;
        }
    }
    out!("# id = {}\n{}", doc.id(), config::document_toml(&doc));
    ExitCode::SUCCESS
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        let kind = match config::check_file(f) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("{e}");
                dataplane::cli::set_failed();
                ok = false;
                continue;
            }
        };
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let origin = f.display().to_string();
        match kind {
            FileKind::Warden => {
                for w in environment_warnings(&text, &origin) {
                    eprintln!("{w}");
                }
                outln!("{origin}: ok (warden config)");
            }
            FileKind::Lab => {
                let errors = lab_stats_paths(&text, &origin);
                if errors.is_empty() {
                    outln!("{origin}: ok (lab topology)");
                } else {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    dataplane::cli::set_failed();
                    ok = false;
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `e`, with "needs root" when it is a permission error and this process
/// is not root (raw sockets, TAP devices, /run/warden and root's control
/// sockets all need it).
fn root_hint(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let denied = text.contains("Permission denied") || text.contains("Operation not permitted");
    if denied && !is_root() && !text.contains("needs root") {
        format!("{text} (needs root)")
    } else {
        text
    }
}

/// True when running as root (the checks that look inside namespaces, and
/// `run` itself, need it).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// What `warden run` would refuse that only the machine can tell: missing
/// interfaces, namespaces, TAPs in their namespace, secret files. Warnings
/// (`FILE:LINE:COLUMN: warning: ...`), not errors: a config is often
/// checked where it will not run (a lab's interfaces exist only inside it).
fn environment_warnings(text: &str, origin: &str) -> Vec<String> {
    use config::Reference;
    use dataplane::iface_lock::ifindex_in;
    let mut out = Vec::new();
    let root = is_root();
    for (r, line, col) in config::references(text) {
        let at = format!("{origin}:{line}:{col}: warning:");
        match r {
            Reference::Interface {
                port,
                name,
                backend,
                netns,
            } => match (&netns, backend) {
                (Some(ns), Backend::Tap) => {
                    let path = netns_path(ns);
                    if !path.exists() {
                        continue; // the Netns reference reports it
                    }
                    if !root {
                        out.push(format!("{at} cannot look for TAP `{name}` of port `{port}` inside namespace `{ns}`: needs root"));
                    } else if ifindex_in(Some(&path), &name).is_err() {
                        out.push(format!("{at} TAP `{name}` of port `{port}` does not exist in namespace `{ns}`: `warden run` would refuse (warden attaches to an existing TAP, it never creates one)"));
                    }
                }
                _ => {
                    if ifindex_in(None, &name).is_err() {
                        let what = if backend == Backend::Tap {
                            "TAP"
                        } else {
                            "interface"
                        };
                        out.push(format!("{at} {what} `{name}` of port `{port}` does not exist in this network namespace: `warden run` here would refuse (fine if warden runs elsewhere, e.g. inside a lab's namespace)"));
                    }
                }
            },
            Reference::Netns { port, name } => {
                let path = netns_path(&name);
                if !path.exists() {
                    out.push(format!("{at} network namespace `{name}` of port `{port}` does not exist ({}): `warden run` would refuse", path.display()));
                }
            }
            Reference::SecretFile { path } => match std::fs::File::open(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    out.push(format!("{at} secret file {} is not readable by this user: `warden run` needs root (or read access)", path.display()));
                }
                Err(e) => out.push(format!(
                    "{at} secret file {}: {e}: `warden run` would refuse",
                    path.display()
                )),
            },
        }
    }
    out
}

/// Errors for stats paths in a lab's checks that name no counter of the
/// warden they read (`vni.100.decap_packets` for `rx_decap_packets`).
fn lab_stats_paths(text: &str, origin: &str) -> Vec<String> {
    let Ok(lab) = config::parse_lab(text, origin) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in &lab.checks {
        let config::Check::Stats { warden, expect, .. } = c else {
            continue;
        };
        let Some(w) = lab.wardens.iter().find(|w| &w.name == warden) else {
            continue;
        };
        let shape = dataplane::stats::Snapshot::shape(&w.config);
        for e in expect {
            if let Some(problem) = dataplane::stats::path_problem(&shape, &e.path) {
                let (line, col) = position_of_path(text, &e.path);
                out.push(format!(
                    "{origin}:{line}:{col}: {problem} (of warden `{warden}`)"
                ));
            }
        }
    }
    out
}

/// Line and column of a stats expectation that starts with `path` (the
/// first `"PATH` in the file), else of `path` anywhere, else 1:1.
fn position_of_path(text: &str, path: &str) -> (usize, usize) {
    let quoted = format!("\"{path}");
    let at = text
        .find(&quoted)
        .map(|i| i + 1)
        .or_else(|| text.find(path))
        .unwrap_or(0);
    let before = &text[..at];
    let line = 1 + before.matches('\n').count();
    let col = 1 + before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    (line, col)
}

/// The control socket named on the command line or in the config.
fn control_socket(socket: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, String> {
    match (socket, config) {
        (Some(s), _) => Ok(s),
        (None, Some(c)) => config::load_warden(&c)
            .map(|cfg| cfg.instance.control_socket)
            .map_err(|e| e.to_string()),
        (None, None) => Ok(PathBuf::from("/run/warden/warden.sock")),
    }
}

/// Does `name` match `pattern` (`*` matches any run of characters)?
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl FlowFilter {
    fn is_empty(&self) -> bool {
        self.identity.is_none() && self.verdict.is_none() && self.port.is_none()
    }

    fn matches(&self, r: &dataplane::flows::FlowRow) -> bool {
        if let Some(id) = &self.identity {
            if !glob(id, &r.src_identity) && !glob(id, &r.dst_identity) {
                return false;
            }
        }
        if let Some(v) = &self.verdict {
            let at_peer = r.recheck;
            let ok = match v.as_str() {
                "peer" | "decided_at_peer" => at_peer,
                other => r.verdict == other,
            };
            if !ok {
                return false;
            }
        }
        if let Some(p) = self.port {
            if r.src_port != p && r.dst_port != p {
                return false;
            }
        }
        true
    }
}

/// Protocol name as people know it, else its number.
fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        58 => "icmp6".to_string(),
        n => n.to_string(),
    }
}

/// Rows from the recent-denials ring (never in the flow table).
fn is_denial(r: &dataplane::flows::FlowRow) -> bool {
    matches!(r.verdict.as_str(), "deny" | "reject")
}

fn flows(
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
    filter: &FlowFilter,
) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = match control::query_flows(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let rows: Vec<_> = rows.into_iter().filter(|r| filter.matches(r)).collect();
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => outln!("{s}"),
            Err(e) => {
                eprintln!("warden: {}", root_hint(&e));
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    // The table's size and whether identity is on come with the counters.
    let snap = control::query_stats_total(&path).ok();
    if let Some(s) = snap.as_ref().filter(|s| !s.identity) {
        outln!(
            "identity is off on {} (no [identity] in its config): flows are tracked for their origin and replies, without identities or verdicts",
            s.instance
        );
    }
    outln!(
        "{:<6} {:<7} {:<5} {:<22} {:<22} {:<30} {:<22} {:<14} {:<34} {:<15} {:<34} {:<15} {:<20} {:<24} {:>9} {:>11} {:>6} {:>6}",
        "vni",
        "dir",
        "proto",
        "source",
        "destination",
        "origin",
        "egress",
        "state",
        "source identity",
        "obtained by",
        "destination identity",
        "verdict",
        "rule",
        "l7",
        "packets",
        "bytes",
        "age s",
        "idle s"
    );
    for r in &rows {
        let state = match r.state {
            dataplane::flows::FlowState::Established => "established",
            dataplane::flows::FlowState::Unestablished => "unestablished",
        };
        let dir = if r.verdict == "reply" {
            "reply"
        } else {
            "forward"
        };
        // A provisional decision: the destination's warden decides, and
        // this one decides again when the reply says who answered.
        let (verdict, dst_identity) = if r.recheck {
            let dst = if r.dst_identity == "unauthenticated" {
                "(known at reply)".to_string()
            } else {
                r.dst_identity.clone()
            };
            ("decided at peer".to_string(), dst)
        } else {
            (r.verdict.clone(), r.dst_identity.clone())
        };
        outln!(
            "{:<6} {:<7} {:<5} {:<22} {:<22} {:<30} {:<22} {:<14} {:<34} {:<15} {:<34} {:<15} {:<20} {:<24} {:>9} {:>11} {:>6} {:>6}",
            r.vni,
            dir,
            proto_name(r.protocol),
            format!("{}:{}", r.src, r.src_port),
            format!("{}:{}", r.dst, r.dst_port),
            r.origin,
            r.egress,
            state,
            r.src_identity,
            r.identity_source,
            dst_identity,
            verdict,
            r.rule,
            r.l7,
            r.packets,
            r.bytes,
            r.age_secs,
            r.idle_secs
        );
    }
    let in_rows = rows.iter().filter(|r| !is_denial(r)).count();
    let denials = rows.len() - in_rows;
    let filtered = if filter.is_empty() {
        ""
    } else {
        " matching the filter"
    };
    match snap.map(|s| s.flows) {
        Some(total) if (in_rows as u64) < total => outln!(
            "{in_rows} flows{filtered} shown of {total} in the table (a snapshot holds at most {} per worker; filter with --identity, --verdict, --port)",
            dataplane::flows::MAX_ROWS
        ),
        _ => outln!("{in_rows} flows{filtered}"),
    }
    if denials > 0 {
        outln!("{denials} recent denials{filtered} (first packets refused; never in the table)");
    }
    ExitCode::SUCCESS
}

/// How `warden stats` was asked to run.
#[derive(Debug)]
struct StatsOpts {
    json: bool,
    interval: Option<f64>,
    count: Option<u64>,
    reset: bool,
    total: bool,
}

fn stats(socket: Option<PathBuf>, config: Option<PathBuf>, o: &StatsOpts) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if o.reset {
        return match control::query_reset(&path) {
            Ok(()) => {
                outln!("counters reset: `warden stats` counts from now on (for every client); `warden stats --total` still shows the totals since start");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("warden: {}", root_hint(&e));
                ExitCode::FAILURE
            }
        };
    }
    if let Some(secs) = o.interval {
        return stats_interval(&path, secs, o.count, o.json);
    }
    let snap = if o.total {
        control::query_stats_total(&path)
    } else {
        control::query_stats(&path)
    };
    match snap {
        Ok(snap) if o.json => match serde_json::to_string_pretty(&snap) {
            Ok(s) => {
                outln!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("warden: {}", root_hint(&e));
                ExitCode::FAILURE
            }
        },
        Ok(snap) => {
            out!("{}", snap.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            ExitCode::FAILURE
        }
    }
}

/// `warden stats --interval SECS`: what moved over each interval, as rates.
fn stats_interval(path: &Path, secs: f64, count: Option<u64>, json: bool) -> ExitCode {
    if !(secs.is_finite() && secs >= 0.1) {
        eprintln!("warden: --interval must be at least 0.1 seconds, not {secs}");
        return ExitCode::FAILURE;
    }
    let take = || control::query_stats_total(path);
    let mut prev = match take() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let mut at = std::time::Instant::now();
    let mut done = 0u64;
    while count.is_none_or(|c| done < c) {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        let now = match take() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warden: {}", root_hint(&e));
                return ExitCode::FAILURE;
            }
        };
        let elapsed = at.elapsed().as_secs_f64();
        at = std::time::Instant::now();
        let d = now.since(&prev, elapsed.round() as u64);
        if json {
            let line = serde_json::json!({ "interval_secs": elapsed, "delta": d });
            outln!("{line}");
        } else {
            out!("{}", dataplane::stats::Snapshot::render_rates(&d, elapsed));
        }
        prev = now;
        done += 1;
    }
    ExitCode::SUCCESS
}

fn fdb(socket: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match control::query_fdb(&path) {
        Ok(d) if json => print_json(&d),
        Ok(d) => {
            out!("{}", dataplane::tables_dump::render_fdb(&d));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            ExitCode::FAILURE
        }
    }
}

fn neighbors(socket: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match control::query_neighbors(&path) {
        Ok(d) if json => print_json(&d),
        Ok(d) => {
            out!("{}", dataplane::tables_dump::render_neighbors(&d));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            ExitCode::FAILURE
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            outln!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            ExitCode::FAILURE
        }
    }
}

fn open_ports(cfg: &WardenConfig) -> Result<Vec<Box<dyn Port>>, String> {
    cfg.ports
        .iter()
        .map(|p| -> Result<Box<dyn Port>, String> {
            match p.backend {
                Backend::AfPacket => AfPacketPort::open_iface(&p.interface, None)
                    .map(|x| Box::new(x) as Box<dyn Port>)
                    .map_err(|e| format!("port {}: {e}", p.name)),
                Backend::Tap => {
                    let ns = p.netns.as_deref().map(netns_path);
                    TapPort::open(&p.interface, ns.as_deref())
                        .map(|x| Box::new(x) as Box<dyn Port>)
                        .map_err(|e| format!("port {}: {e}", p.name))
                }
            }
        })
        .collect()
}

/// Hold every port's interface for this process ([`dataplane::iface_lock`]).
fn lock_interfaces(
    cfg: &WardenConfig,
    config: &Path,
) -> Result<Vec<dataplane::iface_lock::InterfaceLock>, dataplane::iface_lock::LockError> {
    let owner = format!(
        "instance {}, config {}, control socket {}",
        cfg.instance.name,
        config.display(),
        cfg.instance.control_socket.display()
    );
    let mut locks = Vec::new();
    for p in &cfg.ports {
        let ns = p.netns.as_deref().map(netns_path);
        if let Some(l) = dataplane::iface_lock::lock_interface(
            Path::new(dataplane::iface_lock::LOCK_DIR),
            ns.as_deref(),
            &p.interface,
            &owner,
        )? {
            locks.push(l);
        }
    }
    Ok(locks)
}

/// A namespace given by name lives under /var/run/netns.
fn netns_path(ns: &str) -> PathBuf {
    if ns.starts_with('/') {
        PathBuf::from(ns)
    } else {
        Path::new("/var/run/netns").join(ns)
    }
}

fn run(path: &Path) -> ExitCode {
    let cfg = match config::load_warden(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Held until the process ends: a second instance on one of these
    // interfaces refuses to start.
    let _locks = match lock_interfaces(&cfg, path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let server = match ControlServer::bind(&cfg.instance.control_socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warden: {}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let names = Names::from_config(&cfg);
    let rules = cfg
        .policy
        .as_ref()
        .map_or(0, ::policy::PolicySpec::rule_count);
    let counters = Arc::new(
        Counters::new(cfg.ports.len(), cfg.vnis.len(), cfg.peers.len(), 1).with_rules(rules),
    );
    let quit = Arc::new(AtomicBool::new(false));
    {
        let quit = quit.clone();
        if let Err(e) = ctrlc::set_handler(move || quit.store(true, Ordering::Relaxed)) {
            eprintln!("warden: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Ports are opened on the worker thread that owns them; it reports
    // whether that worked before the control socket starts serving.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let worker = {
        let (quit, counters, cfg) = (quit.clone(), counters.clone(), cfg.clone());
        std::thread::Builder::new()
            .name("warden-worker-0".into())
            .spawn(move || {
                let ports = match open_ports(&cfg) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut engine = match Engine::new(&cfg, ports, counters) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("identity: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                worker::run(&mut engine, 0, &quit);
            })
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("warden: cannot start worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("warden: {}", root_hint(&e));
            let _ = worker.join();
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("warden: worker stopped while starting");
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "warden {}: running, {} ports, {} VNIs, {} peers, VTEP {} on {}, control socket {}",
        cfg.instance.name,
        cfg.ports.len(),
        cfg.vnis.len(),
        cfg.peers.len(),
        cfg.underlay.address,
        cfg.ports[cfg.underlay.port].interface,
        cfg.instance.control_socket.display()
    );
    let started = std::time::Instant::now();
    server.serve(&names, &counters, &quit);
    let _ = worker.join();
    // The final counters, for logs and benchmark runs.
    let snap = dataplane::stats::Snapshot::take(
        &names,
        &counters,
        started.elapsed().as_secs(),
        dataplane::port::tsc_hz(),
    );
    eprint!("{}", snap.render());
    eprintln!("warden {}: stopped", cfg.instance.name);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_protocols_and_filters() {
        assert!(glob("spiffe://lab/ns/pay/*", "spiffe://lab/ns/pay/sa/api"));
        assert!(glob("*api", "spiffe://lab/ns/pay/sa/api"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-c"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert_eq!(proto_name(6), "tcp");
        assert_eq!(proto_name(58), "icmp6");
        assert_eq!(proto_name(132), "132");
        let row: dataplane::flows::FlowRow = serde_json::from_value(serde_json::json!({
            "vni": 100, "src": "10.1.0.1", "dst": "10.1.0.2", "protocol": 6,
            "src_port": 40000, "dst_port": 5432, "class": "ports", "from": "local",
            "origin": "port w1", "egress": "peer 10.0.0.2", "state": "established",
            "src_identity": "spiffe://lab/api", "identity_source": "local_port",
            "dst_identity": "unauthenticated", "verdict": "allow", "rule": "s#1",
            "recheck": true, "l7": "-", "packets": 3, "bytes": 180,
            "age_secs": 5, "idle_secs": 1
        }))
        .unwrap();
        let f = |identity: Option<&str>, verdict: Option<&str>, port: Option<u16>| FlowFilter {
            identity: identity.map(str::to_string),
            verdict: verdict.map(str::to_string),
            port,
        };
        assert!(f(Some("spiffe://lab/*"), None, None).matches(&row));
        assert!(!f(Some("other"), None, None).matches(&row));
        assert!(f(None, Some("peer"), Some(5432)).matches(&row));
        assert!(!f(None, Some("deny"), None).matches(&row));
        assert!(!f(None, None, Some(22)).matches(&row));
    }
}
