//! One warden per interface: every port's interface is held with an
//! exclusive `flock` on a file under [`LOCK_DIR`] for the life of the
//! process (the kernel drops it when the process ends, however it ends).
//! Two instances on one uplink would both answer ARP and both forward
//! (ping shows `DUP!`); the second one now refuses to start and names the
//! holder.
//!
//! The key is what identifies an interface, not its name alone: the same
//! name exists in many network namespaces, so the lock file is named after
//! the namespace's inode (`/proc/self/ns/net`, or the port's `netns` file)
//! and the interface's index in it: `iface-<netns dev>-<netns inode>-<ifindex>.lock`.
//! The files stay after exit (removing a lock file races with a new
//! holder); they are a few bytes each.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::port::{in_netns, sys, PortError};

/// Where the lock files live.
pub const LOCK_DIR: &str = "/run/warden";

/// Why an interface could not be held.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum LockError {
    /// interface {iface}{netns} is already used by another warden ({holder}; lock {path}): two instances on one interface would both answer and forward; stop that one or give this instance another interface
    Held {
        iface: String,
        netns: String,
        holder: String,
        path: PathBuf,
    },
    /// cannot lock interface {iface}: {path}: {source}{hint}
    Io {
        iface: String,
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    /// cannot lock interface {iface}: {source}
    Port { iface: String, source: PortError },
}

/// An interface held by this process (released when dropped or at exit).
#[derive(Debug)]
pub struct InterfaceLock {
    _file: File,
    pub path: PathBuf,
}

/// The (device, inode) of a network namespace file.
fn netns_id(path: &Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Index of `iface` in namespace `netns` (a namespace file; the current
/// one when None). Looking inside another namespace needs root.
pub fn ifindex_in(netns: Option<&Path>, iface: &str) -> Result<i32, PortError> {
    match netns {
        None => ifindex_here(iface),
        Some(ns) => in_netns(ns, || ifindex_here(iface)),
    }
}

/// Index of `iface` in the current thread's network namespace.
fn ifindex_here(iface: &str) -> Result<i32, PortError> {
    // Any socket answers SIOCGIFINDEX for the namespace it was made in.
    let os = |op: &'static str, source: std::io::Error| PortError::Os {
        iface: iface.to_string(),
        op,
        source,
    };
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| os("socket", e))?;
    sys::if_info(sock.as_raw_fd(), iface)
        .map(|i| i.index)
        .map_err(|e| os(e.op, e.source))
}

/// Hold `iface` (in `netns`, a namespace file; the current namespace when
/// None) for `owner` (written into the lock file for the next one to read).
/// `Ok(None)` when the interface does not exist: opening the port reports
/// that, with its own message.
pub fn lock_interface(
    dir: &Path,
    netns: Option<&Path>,
    iface: &str,
    owner: &str,
) -> Result<Option<InterfaceLock>, LockError> {
    let ns_path = netns.map_or_else(|| PathBuf::from("/proc/self/ns/net"), Path::to_path_buf);
    let io = |path: &Path, source: std::io::Error| LockError::Io {
        iface: iface.to_string(),
        path: path.to_path_buf(),
        hint: if source.kind() == std::io::ErrorKind::PermissionDenied {
            " (needs root)"
        } else {
            ""
        },
        source,
    };
    let (dev, ino) = netns_id(&ns_path).map_err(|e| io(&ns_path, e))?;
    let index = match netns {
        None => ifindex_here(iface),
        Some(ns) => in_netns(ns, || ifindex_here(iface)),
    };
    let index = match index {
        Ok(i) => i,
        Err(_) => return Ok(None),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(format!("iface-{dev}-{ino}-{index}.lock"));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let text = text.trim();
            return Err(LockError::Held {
                iface: iface.to_string(),
                netns: netns.map_or_else(String::new, |n| format!(" in netns {}", n.display())),
                holder: if text.is_empty() {
                    "holder unknown".to_string()
                } else {
                    text.to_string()
                },
                path,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
    }
    // Ours now: say who holds it.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "pid {}, {owner}", std::process::id());
    Ok(Some(InterfaceLock { _file: file, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_ones_pid() {
        let dir = std::env::temp_dir().join(format!("warden-lock-{}", std::process::id()));
        let a = lock_interface(&dir, None, "lo", "instance a")
            .unwrap()
            .unwrap();
        let e = lock_interface(&dir, None, "lo", "instance b")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("interface lo is already used by another warden"),
            "{e}"
        );
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("instance a"), "{e}");
        drop(a);
        let b = lock_interface(&dir, None, "lo", "instance b").unwrap();
        assert!(b.is_some());
        assert!(lock_interface(&dir, None, "no-such-if0", "c")
            .unwrap()
            .is_none());
        drop(b);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
