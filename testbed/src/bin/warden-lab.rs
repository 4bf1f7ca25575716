//! `warden-lab`: bring a lab topology up, run its checks, tear it down.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use dataplane::outln;

use testbed::lab::{self, LabSource, Options, Selector};
use testbed::state::Tracker;
use testbed::{tcp, udp};

#[derive(Debug, Parser)]
#[command(
    name = "warden-lab",
    version = dataplane::VERSION,
    about = "Lab topologies for warden: namespaces, veths, TAPs, kernel VXLAN peers, warden instances and traffic checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Lab topology file; the embedded gateway lab when omitted.
    file: Option<PathBuf>,
    /// Namespace prefix (default: `wl` and 6 random hex digits).
    #[arg(long)]
    prefix: Option<String>,
    /// The warden binary (default: $WARDEN_BIN, else `warden` next to this
    /// binary).
    #[arg(long)]
    warden: Option<PathBuf>,
    /// Seconds a warden may take to answer on its control socket.
    #[arg(long, default_value_t = 15)]
    ready_timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bring a lab up and leave it running.
    Up(UpArgs),
    /// Bring a lab up, run its checks, tear it down; fails if a check fails.
    Run {
        #[command(flatten)]
        args: UpArgs,
        /// Leave the lab running after the checks (remove it with `down`).
        #[arg(long)]
        keep: bool,
    },
    /// Tear down the runs of FILE (the embedded lab when omitted) whose
    /// owner (the warden-lab that brought them up) is gone; a run whose
    /// owner still runs is left alone unless named by --prefix.
    Down {
        file: Option<PathBuf>,
        /// Tear down every run whose owner is gone, of any file.
        #[arg(long, conflicts_with_all = ["file", "prefix"])]
        all: bool,
        /// Tear down the run with this prefix, even if its owner still runs.
        #[arg(long, conflicts_with = "file")]
        prefix: Option<String>,
    },
    /// List running labs.
    List,
    /// (internal) Receive and verify a TCP byte stream.
    #[command(hide = true)]
    TcpSink {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        bytes: u64,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// (internal) Send a TCP byte stream.
    #[command(hide = true)]
    TcpSource {
        #[arg(long)]
        connect: std::net::SocketAddr,
        #[arg(long)]
        bytes: u64,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Send no faster than this many Mbit/s.
        #[arg(long)]
        rate_mbit: Option<u64>,
    },
    /// (internal) Echo UDP datagrams back, verifying each.
    #[command(hide = true)]
    UdpEcho {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// (internal) Send UDP datagrams and verify their echoes.
    #[command(hide = true)]
    UdpProbe {
        #[arg(long)]
        connect: std::net::SocketAddr,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

/// `println!` for output printed while a lab is up: a closed stdout is
/// ignored (the checks go on and the lab is still torn down), never a panic
/// and never an exit that would skip the teardown.
macro_rules! sayln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The tracker of the run in progress, for the signal handler.
type Slot = Arc<Mutex<Option<Tracker>>>;

/// On SIGINT/SIGTERM/SIGHUP: tear the current run down, then exit 130. The
/// handler takes the state lock, so it waits for a resource being created to
/// be recorded and finished, and nothing is created after it.
fn install_signal_teardown() -> Slot {
    let slot: Slot = Arc::new(Mutex::new(None));
    let handler_slot = slot.clone();
    let installed = ctrlc::set_handler(move || {
        let tracker = handler_slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(tracker) = tracker {
            let state = tracker.lock();
            eprintln!("\nwarden-lab: interrupted, tearing down {}", state.prefix);
            if let Err(e) = lab::teardown(&state) {
                eprintln!("warden-lab: {e}");
            }
        }
        std::process::exit(130);
    });
    if let Err(e) = installed {
        eprintln!("warning: no signal handler ({e}); an interrupted run needs `warden-lab down`");
    }
    slot
}

fn options(args: &UpArgs) -> Result<Options, String> {
    let self_exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let warden_bin = args
        .warden
        .clone()
        .or_else(|| std::env::var_os("WARDEN_BIN").map(PathBuf::from))
        .unwrap_or_else(|| self_exe.with_file_name("warden"));
    Ok(Options {
        prefix: args.prefix.clone(),
        self_exe,
        warden_bin,
        ready_timeout: Duration::from_secs(args.ready_timeout),
    })
}

fn source(file: Option<&Path>) -> Result<LabSource, lab::LabError> {
    match file {
        Some(path) => LabSource::from_file(path),
        None => Ok(LabSource::embedded()),
    }
}

fn print_entry(state: &testbed::state::RunState, lab: &config::Lab) {
    outln!("lab {} is up: prefix {}", lab.name, state.prefix);
    outln!("  state: {}", state.dir.display());
    for host in &lab.hosts {
        outln!(
            "  host {:<10} ip netns exec {} bash",
            host.name,
            state.ns(&host.name)
        );
    }
    for w in &lab.wardens {
        outln!(
            "  warden {:<8} log {}, socket {}",
            w.name,
            state.dir.join(format!("{}.log", w.name)).display(),
            state.dir.join(format!("{}.sock", w.name)).display()
        );
    }
}

fn run(cmd: Cmd) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cmd {
        Cmd::Up(args) => {
            let slot = install_signal_teardown();
            let opts = options(&args)?;
            let src = source(args.file.as_deref())?;
            let set =
                |t: &Tracker| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
            let running = lab::up(&src, &opts, &set)?;
            let lab_def = running.lab().clone();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let state = running.detach();
            print_entry(&state, &lab_def);
            let down = match &args.file {
                Some(f) => format!("warden-lab down {}", f.display()),
                None => "warden-lab down".to_string(),
            };
            outln!(
                "  remove it with: {down}   (or: warden-lab down --prefix {})",
                state.prefix
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { args, keep } => {
            let slot = install_signal_teardown();
            let opts = options(&args)?;
            let src = source(args.file.as_deref())?;
            let set =
                |t: &Tracker| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
            let running = lab::up(&src, &opts, &set)?;
            sayln!(
                "lab {} up (prefix {})",
                running.lab().name,
                running.prefix()
            );
            let report = running.run_checks(&mut std::io::stdout());
            if !report.ok() {
                for (name, log) in running.warden_logs() {
                    sayln!("--- warden {name} log ({}) ---", log.display());
                    sayln!("{}", testbed::process::tail(&log, 30));
                }
            }
            let torn = if keep {
                let state = running.detach();
                sayln!(
                    "lab left running: warden-lab down --prefix {}",
                    state.prefix
                );
                Ok(())
            } else {
                running.teardown()
            };
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
            sayln!("{}", report.summary());
            torn?;
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Down { file, all, prefix } => {
            let selector = if all {
                Selector::All
            } else if let Some(p) = prefix {
                Selector::Prefix(p)
            } else {
                match file {
                    Some(f) => Selector::Source(LabSource::key_of(&f)),
                    None => Selector::Source(lab::DEFAULT_LAB_ORIGIN.to_string()),
                }
            };
            let report = lab::down_report(&selector)?;
            for prefix in &report.removed {
                outln!("removed {prefix}");
            }
            for (prefix, pid) in &report.kept {
                outln!(
                    "left {prefix} running: its owner, warden-lab pid {pid}, still runs (a run in progress or another user's lab); remove it anyway with: warden-lab down --prefix {prefix}"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List => {
            for (dir, state) in testbed::state::list_runs() {
                match state {
                    Ok(s) => outln!(
                        "{}  {}  {}  {} namespaces, {} processes, {}",
                        s.prefix,
                        s.lab,
                        s.source,
                        s.namespaces.len(),
                        s.processes.len(),
                        match s.owner {
                            Some(o) if o.is_alive() => format!("owner pid {} running", o.pid),
                            _ => "owner gone".to_string(),
                        }
                    ),
                    Err(e) => outln!("{}  (unreadable: {e})", dir.display()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::TcpSink {
            listen,
            bytes,
            seed,
            timeout_secs,
        } => {
            let listener = tcp::sink_bind(listen)?;
            // The lab waits for this line before it starts the source.
            outln!("listening {listen}");
            let t = tcp::sink_accept(&listener, bytes, seed, Duration::from_secs(timeout_secs))?;
            outln!(
                "received {} bytes in {:.3} s ({:.0} Mbit/s)",
                t.bytes,
                t.elapsed.as_secs_f64(),
                t.mbit_per_sec()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::TcpSource {
            connect,
            bytes,
            seed,
            timeout_secs,
            rate_mbit,
        } => {
            let t = tcp::source_paced(
                connect,
                bytes,
                seed,
                Duration::from_secs(timeout_secs),
                rate_mbit.map(|m| m.saturating_mul(125_000)),
            )?;
            outln!(
                "sent {} bytes in {:.3} s ({:.0} Mbit/s)",
                t.bytes,
                t.elapsed.as_secs_f64(),
                t.mbit_per_sec()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::UdpEcho {
            listen,
            count,
            size,
            seed,
            timeout_secs,
        } => {
            udp::check_size(size)?;
            let socket = udp::echo_bind(listen)?;
            // The lab waits for this line before it starts the probe.
            outln!("listening {listen}");
            let e = udp::echo_serve(
                &socket,
                count,
                size,
                seed,
                Duration::from_secs(timeout_secs),
            )?;
            outln!(
                "echoed {} datagrams ({} again, {} foreign)",
                e.datagrams,
                e.duplicates,
                e.foreign
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::UdpProbe {
            connect,
            count,
            size,
            seed,
            timeout_secs,
        } => {
            let p = udp::Probe::new(count, size, seed, Duration::from_secs(timeout_secs));
            let x = udp::probe(connect, &p)?;
            // One line: the check's summary.
            outln!(
                "{}/{} datagrams of {} bytes echoed in {:.3} s, {} resent, max rtt {:.1} ms",
                x.count,
                x.count,
                x.size,
                x.elapsed.as_secs_f64(),
                x.resent,
                x.max_rtt.as_secs_f64() * 1e3
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
