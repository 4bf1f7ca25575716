//! Output helpers for the command-line tools (`warden`, `warden-lab`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`warden stats | head
//! -1`) returns `BrokenPipe` and `println!` panics ("failed printing to
//! stdout", exit 101). The tools print through [`outln!`](crate::outln) and
//! [`out!`](crate::out) instead: when the reader has gone they exit at once,
//! quietly, with [`quiet_status`] (0 unless the command already failed).
//!
//! Why a writer and not SIGPIPE reset to its default: `warden run` and
//! `warden-lab run` write to sockets (control clients, TCP checks) whose
//! peer may close at any moment; with the default disposition that would
//! kill the switch or leave a lab half torn down. Treating `BrokenPipe` on
//! stdout as "nobody is listening any more" covers every subcommand and
//! needs no `unsafe`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static FAILED: AtomicBool = AtomicBool::new(false);

/// Remember that the command failed, so that a closed stdout later still
/// exits with status 1 (`warden check bad.toml | head -1`).
pub fn set_failed() {
    FAILED.store(true, Ordering::Relaxed);
}

/// The status a quiet exit on a closed stdout uses.
pub fn quiet_status() -> i32 {
    i32::from(FAILED.load(Ordering::Relaxed))
}

/// Write `args` to stdout; exit quietly if stdout is a closed pipe.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// What a tool does when stdout cannot be written: a closed pipe is a
/// quiet exit, anything else is reported.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(quiet_status());
    }
    eprintln!("cannot write to stdout: {e}");
    std::process::exit(1);
}

/// `println!` that exits quietly when stdout is a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    }};
}

/// `print!` that exits quietly when stdout is a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}
