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
use dataplane::observe;
use dataplane::port::{AfPacketPort, AfXdpPort, Port, TapPort};
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
        /// Log level or filter (error, warn, info, debug, trace, or a
        /// tracing filter such as `info,dataplane=debug`); default: $RUST_LOG,
        /// else info. Nothing is logged per packet at any level.
        #[arg(long)]
        log_level: Option<String>,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
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
    /// Reload a running instance's config file (as SIGHUP does): a file
    /// with an error, or a change that needs a restart, keeps the running
    /// config; live flows are decided again by the new policy.
    Reload {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Explain what the running instance does with a packet: each stage
    /// (ingress, identity, flow state, policy set/rule/mode, L7, forwarding,
    /// stamp or strip, output) or the drop reason, decided by the live
    /// tables without forwarding anything. With --live, annotate the next
    /// -n real packets that match, stage by stage.
    Trace {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Follow real packets instead (filters: --src, --dst, --proto, --port-number).
        #[arg(long)]
        live: bool,
        /// The access port the packet arrives on (config name)...
        #[arg(long)]
        port: Option<String>,
        /// ... or the peer (underlay address) it arrives from, with --vni.
        #[arg(long)]
        peer: Option<std::net::Ipv4Addr>,
        #[arg(long)]
        vni: Option<u32>,
        #[arg(long)]
        src: Option<std::net::Ipv4Addr>,
        #[arg(long)]
        dst: Option<std::net::Ipv4Addr>,
        /// tcp, udp or icmp.
        #[arg(long)]
        proto: Option<String>,
        #[arg(long, default_value_t = 40000)]
        sport: u16,
        #[arg(long, default_value_t = 0)]
        dport: u16,
        /// Default: the bound workload's MAC for --src, else 02:00:00:00:00:01.
        #[arg(long)]
        src_mac: Option<String>,
        /// Default: the bound workload's for --dst, the gateway's when --dst
        /// is outside the VNI's subnet, a known neighbor's, else
        /// 02:00:00:00:00:02.
        #[arg(long)]
        dst_mac: Option<String>,
        /// From a warden peer: the identity its header asserts (by name).
        #[arg(long)]
        header: Option<String>,
        /// From a plain VTEP: the VXLAN-GBP group.
        #[arg(long)]
        gbp: Option<u16>,
        /// An L7 request to decide: "http GET /path host", "tls NAME", "dns NAME".
        #[arg(long)]
        request: Option<String>,
        /// Take the frame from this pcap file instead (Ethernet frames).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Which frame of the pcap file (from 0).
        #[arg(long, default_value_t = 0)]
        index: usize,
        /// --live: either port of the flow.
        #[arg(long)]
        port_number: Option<u16>,
        /// --live: packets to follow.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: u32,
        /// --live: give up after this many seconds.
        #[arg(short = 't', long, default_value_t = 30)]
        seconds: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Capture a port's frames or the packets dropped (for one reason or
    /// any, the reason as a packet comment) into a pcapng file that
    /// tcpdump -r and Wireshark read. Stops after -n frames or -t seconds.
    Capture {
        /// The control socket of the instance.
        #[arg(short, long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Or the instance config, to find its control socket.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The port (by its config name) whose frames to take.
        #[arg(long, conflicts_with = "drops", required_unless_present = "drops")]
        port: Option<String>,
        /// Which of the port's frames: rx, tx or both.
        #[arg(long, value_enum, default_value = "both")]
        direction: Direction,
        /// Take dropped packets instead (all reasons unless --reason).
        #[arg(long)]
        drops: bool,
        /// Only drops for this reason (a name `warden stats` shows).
        #[arg(long, requires = "drops")]
        reason: Option<String>,
        /// Stop after this many frames.
        #[arg(short = 'n', long, default_value_t = 100)]
        count: u64,
        /// Stop after this many seconds.
        #[arg(short = 't', long, default_value_t = 10)]
        seconds: u64,
        /// Bytes kept of each frame.
        #[arg(long, default_value_t = 2048)]
        snaplen: usize,
        /// The pcapng file to write.
        #[arg(short = 'w', long)]
        write: PathBuf,
    },
    /// Follow the flow log (`[flow_log]`) as it is written, with filters,
    /// as `hubble observe` does: one line per flow event.
    Observe {
        /// The flow log file.
        #[arg(long, conflicts_with = "config")]
        file: Option<PathBuf>,
        /// Or the instance config, to find its flow log.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Only events whose source or destination identity is NAME.
        #[arg(long)]
        identity: Option<String>,
        /// Only events with this verdict (allow, deny, reject, revoked,
        /// would_deny, ...; for L7 events, the request's verdict).
        #[arg(long)]
        verdict: Option<String>,
        /// Only events whose source or destination port is N.
        #[arg(long)]
        port: Option<u16>,
        /// Only events of this kind (opened, denied, closed, l7).
        #[arg(long)]
        event: Option<String>,
        /// Start at the beginning of the current file, not its end.
        #[arg(long)]
        since_start: bool,
        /// Stop after N matching events.
        #[arg(short = 'n', long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Print the JSON records as written.
        #[arg(long)]
        json: bool,
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

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Direction {
    Rx,
    Tx,
    Both,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Logs of `warden run` go to stderr through `tracing`.
fn init_logging(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let done = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    done.map_err(|e| format!("cannot start logging: {e}"))
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
        Command::Run {
            config,
            log_level,
            log_format,
        } => {
            if let Err(e) = init_logging(log_level.as_deref(), log_format) {
                eprintln!("warden: {e}");
                return ExitCode::FAILURE;
            }
            run(&config)
        }
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
        Command::Reload { socket, config } => reload(socket, config),
        Command::Trace {
            socket,
            config,
            live,
            port,
            peer,
            vni,
            src,
            dst,
            proto,
            sport,
            dport,
            src_mac,
            dst_mac,
            header,
            gbp,
            request,
            pcap,
            index,
            port_number,
            count,
            seconds,
            json,
        } => {
            let path = match control_socket(socket, config) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            if live {
                let req = dataplane::explain::LiveRequest {
                    filter: dataplane::engine::LiveFilter {
                        src: src.map(std::net::IpAddr::V4),
                        dst: dst.map(std::net::IpAddr::V4),
                        proto: proto.as_deref().and_then(proto_number),
                        port: port_number,
                    },
                    count,
                    seconds,
                };
                return trace_live(&path, &req, json);
            }
            let frame_hex = match &pcap {
                Some(f) => match pcap_frame(f, index) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        eprintln!("warden: {}: {e}", f.display());
                        return ExitCode::FAILURE;
                    }
                },
                None => None,
            };
            let flow = match (src, dst, &proto, &frame_hex) {
                (Some(src), Some(dst), Some(proto), None) => Some(dataplane::engine::FlowSpec {
                    src,
                    dst,
                    proto: proto.clone(),
                    sport,
                    dport,
                    src_mac,
                    dst_mac,
                }),
                (_, _, _, Some(_)) => None,
                _ => {
                    eprintln!("warden: give the packet: --src, --dst and --proto, or --pcap FILE");
                    return ExitCode::FAILURE;
                }
            };
            let req = dataplane::explain::TraceRequest {
                port,
                peer,
                vni,
                flow,
                frame_hex,
                header,
                gbp,
                request,
            };
            trace(&path, &req, json)
        }
        Command::Capture {
            socket,
            config,
            port,
            direction,
            drops,
            reason,
            count,
            seconds,
            snaplen,
            write,
        } => {
            let file = match std::path::absolute(&write) {
                Ok(f) => f.display().to_string(),
                Err(e) => {
                    eprintln!("warden: {}: {e}", write.display());
                    return ExitCode::FAILURE;
                }
            };
            let req = dataplane::capture::Request {
                port,
                rx: matches!(direction, Direction::Rx | Direction::Both),
                tx: matches!(direction, Direction::Tx | Direction::Both),
                drops,
                reason,
                count,
                seconds,
                snaplen,
                file,
            };
            capture(socket, config, &req)
        }
        Command::Observe {
            file,
            config,
            identity,
            verdict,
            port,
            event,
            since_start,
            count,
            timeout,
            json,
        } => {
            let filter = observe::Filter {
                identity,
                verdict,
                port,
                event,
            };
            let opts = observe::Options {
                since_start,
                count,
                timeout: timeout.map(std::time::Duration::from_secs),
                json,
            };
            observe::run(file, config, &filter, &opts)
        }
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
            } => {
                let what = if backend == Backend::Tap {
                    "TAP"
                } else {
                    "interface"
                };
                match &netns {
                    Some(ns) => {
                        let path = netns_path(ns);
                        if !path.exists() {
                            continue; // the Netns reference reports it
                        }
                        if !root {
                            out.push(format!("{at} cannot look for {what} `{name}` of port `{port}` inside namespace `{ns}`: needs root"));
                        } else if ifindex_in(Some(&path), &name).is_err() {
                            let never = if backend == Backend::Tap {
                                " (warden attaches to an existing TAP, it never creates one)"
                            } else {
                                ""
                            };
                            out.push(format!("{at} {what} `{name}` of port `{port}` does not exist in namespace `{ns}`: `warden run` would refuse{never}"));
                        }
                    }
                    None => {
                        if ifindex_in(None, &name).is_err() {
                            out.push(format!("{at} {what} `{name}` of port `{port}` does not exist in this network namespace: `warden run` here would refuse (fine if warden runs elsewhere, e.g. inside a lab's namespace)"));
                        }
                    }
                }
            }
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
/// A protocol number as `warden flows` prints it.
fn proto_name(p: u8) -> String {
    dataplane::flowlog::protocol_name(p)
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

fn proto_number(p: &str) -> Option<u8> {
    match p {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        n => n.parse().ok(),
    }
}

/// Frame `index` of a pcap or pcapng file, as hex.
fn pcap_frame(path: &Path, index: usize) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let hex = identity::doc::hex;
    if let Ok(mut r) = pcap_file::pcap::PcapReader::new(&bytes[..]) {
        let mut i = 0;
        while let Some(p) = r.next_packet() {
            let p = p.map_err(|e| e.to_string())?;
            if i == index {
                return Ok(hex(&p.data));
            }
            i += 1;
        }
        return Err(format!("has {i} frames, no frame {index}"));
    }
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).map_err(|e| e.to_string())?;
    let mut i = 0;
    while let Some(block) = r.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.map_err(|e| e.to_string())? {
            if i == index {
                return Ok(hex(&p.data));
            }
            i += 1;
        }
    }
    Err(format!("has {i} frames, no frame {index}"))
}

fn trace(path: &Path, req: &dataplane::explain::TraceRequest, json: bool) -> ExitCode {
    match control::request_trace(path, req) {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            for s in &r.steps {
                println!("{:<14} {}", s.stage, s.text);
            }
            println!("result: {}", r.result);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trace_live(path: &Path, req: &dataplane::explain::LiveRequest, json: bool) -> ExitCode {
    use std::io::Write;
    let stdout = std::io::stdout();
    let result = control::follow_live_trace(path, req, |l| {
        let mut out = stdout.lock();
        let _ = if json {
            writeln!(out, "{}", serde_json::to_string(l).unwrap_or_default())
        } else {
            writeln!(out, "{}", l.packet)
                .and_then(|()| l.stages.iter().try_for_each(|s| writeln!(out, "  {s}")))
        };
        let _ = out.flush();
    });
    match result {
        Ok(n) => {
            eprintln!("{n} packets traced");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::FAILURE
        }
    }
}

fn capture(
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
    req: &dataplane::capture::Request,
) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match control::request_capture(&path, req) {
        Ok(o) => {
            println!(
                "{} frames written to {}{}",
                o.captured,
                o.file,
                if o.missed > 0 {
                    format!(" ({} more matched but found the ring full)", o.missed)
                } else {
                    String::new()
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::FAILURE
        }
    }
}

fn reload(socket: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match control::request_reload(&path) {
        Ok(o) => {
            println!("reloaded {}: {}", o.file, o.changed.join(", "));
            for (i, w) in o.workers.iter().enumerate() {
                println!(
                    "worker {i}: {} flows checked, {} revoked, {} decided by another rule, \
                     static FDB -{} +{}, {} us",
                    w.flows_checked, w.revoked, w.changed, w.fdb_removed, w.fdb_installed, w.micros
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::FAILURE
        }
    }
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
    dump(
        socket,
        config,
        json,
        control::query_fdb,
        dataplane::tables_dump::render_fdb,
    )
}

fn neighbors(socket: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> ExitCode {
    dump(
        socket,
        config,
        json,
        control::query_neighbors,
        dataplane::tables_dump::render_neighbors,
    )
}

/// A table the worker publishes (`fdb`, `neighbors`), as JSON or text.
fn dump<T: serde::Serialize>(
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
    query: impl Fn(&Path) -> Result<T, control::ControlError>,
    render: impl Fn(&T) -> String,
) -> ExitCode {
    let path = match control_socket(socket, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match query(&path) {
        Ok(d) if json => print_json(&d),
        Ok(d) => {
            out!("{}", render(&d));
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
            // Every backend opens its interface inside `netns` when given.
            let ns = p.netns.as_deref().map(netns_path);
            let ns = ns.as_deref();
            let port = match p.backend {
                Backend::AfPacket => AfPacketPort::open_iface(&p.interface, ns).map(boxed),
                Backend::AfXdp => AfXdpPort::open_iface(&p.interface, ns).map(boxed),
                Backend::Tap => TapPort::open(&p.interface, ns).map(boxed),
            };
            port.map_err(|e| format!("port {}: {e}", p.name))
        })
        .collect()
}

fn boxed(port: impl Port + 'static) -> Box<dyn Port> {
    Box::new(port)
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
    // A config error is the command line's answer, as `warden check`
    // prints it (FILE:LINE:COLUMN: message), not a log event.
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
            tracing::error!("{}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let server = match ControlServer::bind(&cfg.instance.control_socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{}", root_hint(&e));
            return ExitCode::FAILURE;
        }
    };
    let names = Arc::new(std::sync::RwLock::new(Names::of(&cfg)));
    let (reloader, mut inboxes) =
        dataplane::reload::Reloader::new(path.to_path_buf(), cfg.clone(), names.clone(), 1);
    let inbox = inboxes.remove(0);
    let counters = Arc::new(Counters::new(
        cfg.ports.len(),
        cfg.vnis.len(),
        cfg.peers.len(),
        1,
    ));
    let quit = Arc::new(AtomicBool::new(false));
    {
        let quit = quit.clone();
        if let Err(e) = ctrlc::set_handler(move || quit.store(true, Ordering::Relaxed)) {
            tracing::error!("cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        tracing::error!("cannot install the SIGHUP handler: {e}");
        return ExitCode::FAILURE;
    }
    // The flow log's writer, when configured.
    let mut flow_log = None;
    if let Some(fl) = &cfg.flow_log {
        let w = match dataplane::flowlog::Writer::open(&fl.path, fl.max_bytes, fl.keep) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("flow log {}: {e}", fl.path.display());
                return ExitCode::FAILURE;
            }
        };
        let (tx, rx) = dataplane::flowlog::channel();
        let (names, quit) = (names.clone(), quit.clone());
        let writer = std::thread::Builder::new()
            .name("warden-flowlog".into())
            .spawn(move || dataplane::flowlog::run_writer(w, rx, names, quit));
        match writer {
            Ok(h) => flow_log = Some((tx, fl.rate, h)),
            Err(e) => {
                tracing::error!("cannot start the flow log writer: {e}");
                return ExitCode::FAILURE;
            }
        }
        tracing::info!(path = %fl.path.display(), max_bytes = fl.max_bytes, keep = fl.keep, rate = fl.rate, "flow log");
    }
    let flow_log_tx = flow_log.as_ref().map(|(tx, rate, _)| (tx.clone(), *rate));
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
                if let Some((tx, rate)) = flow_log_tx {
                    engine.set_flow_log(tx, rate);
                }
                let _ = ready_tx.send(Ok(()));
                worker::run(&mut engine, 0, &quit, Some(&inbox));
            })
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot start the worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!("{}", root_hint(&e));
            let _ = worker.join();
            return ExitCode::FAILURE;
        }
        Err(_) => {
            tracing::error!("the worker stopped while starting");
            return ExitCode::FAILURE;
        }
    }
    log_loaded(path, &cfg);
    let started = std::time::Instant::now();
    let metrics = match cfg.instance.metrics {
        Some(addr) => match dataplane::metrics::MetricsServer::bind(addr) {
            Ok(m) => {
                tracing::info!(url = %format!("http://{}/metrics", m.local_addr()), "serving metrics");
                let (names, counters, quit) = (names.clone(), counters.clone(), quit.clone());
                Some(std::thread::spawn(move || {
                    m.serve(names, counters, started, quit)
                }))
            }
            Err(e) => {
                tracing::error!("cannot listen for metrics on {addr}: {e}");
                quit.store(true, Ordering::Relaxed);
                let _ = worker.join();
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut ctx = dataplane::control::ControlCtx::new(&names, &counters);
    ctx.reloader = Some(&reloader);
    server.serve_ctx(&ctx, &quit, Some(&hup));
    if let Some(m) = metrics {
        let _ = m.join();
    }
    let _ = worker.join();
    if let Some((tx, _, writer)) = flow_log {
        // The worker's sender went with it; this one too: the writer
        // drains what is left and stops.
        drop(tx);
        let _ = writer.join();
    }
    // The final counters, for logs and benchmark runs.
    let names = names
        .read()
        .map(|n| n.clone())
        .unwrap_or_else(|_| Names::of(&cfg));
    let snap = dataplane::stats::Snapshot::take(
        &names,
        &counters,
        started.elapsed().as_secs(),
        dataplane::port::tsc_hz(),
    );
    // The final counters, whole, for logs and benchmark runs.
    eprint!("{}", snap.render());
    tracing::info!(
        instance = %cfg.instance.name,
        uptime_secs = snap.uptime_secs,
        drops_total = snap.drops_total,
        "stopped"
    );
    ExitCode::SUCCESS
}

/// What `run` loaded, once at start.
fn log_loaded(path: &Path, cfg: &WardenConfig) {
    let (sets, rules) = cfg
        .policy
        .as_ref()
        .map_or((0, 0), |p| (p.sets.len(), p.rule_count()));
    tracing::info!(
        instance = %cfg.instance.name,
        config = %path.display(),
        version = env!("CARGO_PKG_VERSION"),
        ports = cfg.ports.len(),
        vnis = cfg.vnis.len(),
        peers = cfg.peers.len(),
        vtep = %cfg.underlay.address,
        uplink = %cfg.ports[cfg.underlay.port].interface,
        identity = cfg.identity.is_some(),
        identity_documents = cfg.documents.len(),
        workloads = cfg.workloads.len(),
        policy_sets = sets,
        policy_rules = rules,
        control_socket = %cfg.instance.control_socket.display(),
        "running"
    );
    for p in &cfg.ports {
        tracing::info!(port = %p.name, interface = %p.interface, backend = ?p.backend, "port");
    }
    for p in &cfg.peers {
        tracing::info!(peer = %p.address, name = p.name.as_deref().unwrap_or(""), "peer");
    }
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
