//! The per-run state file: everything a run created, written before it is
//! created, so that `warden-lab down` can remove a lab whose warden-lab
//! process was killed with `kill -9`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::netns::{render, CmdError};
use crate::process::Pid;

/// Preferred parent of the per-run state directories.
pub const RUN_BASE: &str = "/run/warden-lab";
/// Fallback parent when /run is not writable.
pub const TMP_BASE: &str = "/tmp/warden-lab";
/// Name of the state file inside a run's directory.
pub const STATE_FILE: &str = "state.json";

/// Errors reading or writing state files.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A state file that is not valid JSON of the expected shape.
    #[error("{path}: bad state file: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A link that teardown deletes by name (TAPs; veths and VXLAN devices go
/// with their namespaces, but are listed too so that nothing depends on that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub ns: String,
    pub name: String,
}

/// A process the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: Pid,
    /// What it is, for messages ("warden gw", "tcp-sink b1").
    pub what: String,
}

/// Everything one run of a lab owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Namespace prefix, e.g. `wl3fa2c1`; every namespace is `<prefix>-<name>`.
    pub prefix: String,
    /// Which lab file this run came from (canonical path, or `embedded:NAME`).
    pub source: String,
    /// The lab's `[lab] name`.
    pub lab: String,
    /// The run's state directory (configs, logs, sockets, this file).
    pub dir: PathBuf,
    /// The warden-lab process that brought the lab up.
    pub owner: Option<Pid>,
    /// Namespaces, in creation order.
    pub namespaces: Vec<String>,
    /// Links, in creation order.
    pub links: Vec<LinkRecord>,
    /// Processes still believed to run.
    pub processes: Vec<ProcessRecord>,
}

impl RunState {
    /// A fresh state for `prefix`, with its directory created under the
    /// first writable base directory, and saved at once.
    pub fn create(prefix: &str, source: &str, lab: &str) -> Result<Self, StateError> {
        let dir = choose_base()?.join(prefix);
        std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        let state = Self {
            prefix: prefix.to_string(),
            source: source.to_string(),
            lab: lab.to_string(),
            dir,
            owner: Pid::current(std::process::id()),
            namespaces: Vec::new(),
            links: Vec::new(),
            processes: Vec::new(),
        };
        state.save()?;
        Ok(state)
    }

    /// Path of the state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn save(&self) -> Result<(), StateError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|source| StateError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Full namespace name of lab host or switch `name`.
    pub fn ns(&self, name: &str) -> String {
        ns_name(&self.prefix, name)
    }

    /// True when `ns` is one of this run's namespaces by name, the guard
    /// that keeps teardown's last resort from touching anything else.
    pub fn owns_ns(&self, ns: &str) -> bool {
        ns.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with('-') && rest.len() > 1)
    }
}

/// Namespace name for a lab object.
pub fn ns_name(prefix: &str, name: &str) -> String {
    format!("{prefix}-{name}")
}

/// The base directories that may hold runs, preferred first.
pub fn base_dirs() -> [PathBuf; 2] {
    [PathBuf::from(RUN_BASE), PathBuf::from(TMP_BASE)]
}

fn choose_base() -> Result<PathBuf, StateError> {
    let mut last = None;
    for base in base_dirs() {
        match std::fs::create_dir_all(&base) {
            Ok(()) => {
                let probe = base.join(format!(".probe-{}", std::process::id()));
                match std::fs::write(&probe, b"") {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&probe);
                        return Ok(base);
                    }
                    Err(e) => last = Some(io_err(&base)(e)),
                }
            }
            Err(e) => last = Some(io_err(&base)(e)),
        }
    }
    Err(last.unwrap_or_else(|| io_err(Path::new(RUN_BASE))(std::io::ErrorKind::NotFound.into())))
}

/// Every run's state directory with its parsed state (or why it cannot be
/// read).
pub fn list_runs() -> Vec<(PathBuf, Result<RunState, StateError>)> {
    let mut runs = Vec::new();
    for base in base_dirs() {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let state = RunState::load(&dir.join(STATE_FILE));
            runs.push((dir, state));
        }
    }
    runs
}

/// A run's state shared between the main thread and the signal handler.
///
/// Every resource is recorded and saved while the lock is held and created
/// before it is released, so a signal handler that takes the lock sees a
/// state file that lists everything that exists.
#[derive(Debug, Clone)]
pub struct Tracker(Arc<Mutex<RunState>>);

impl Tracker {
    /// Shares `state`.
    pub fn new(state: RunState) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    /// Locks the state; a poisoned lock still yields it (teardown must run).
    pub fn lock(&self) -> MutexGuard<'_, RunState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> RunState {
        self.lock().clone()
    }

    /// Records a resource with `record`, saves, then runs `create`.
    pub fn create<T, E>(
        &self,
        record: impl FnOnce(&mut RunState),
        create: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StateError>,
    {
        let mut state = self.lock();
        record(&mut state);
        state.save()?;
        create()
    }

    /// Records namespace `ns`, then creates it.
    pub fn add_netns(&self, ns: &str) -> Result<(), TrackError> {
        self.create(
            |s| s.namespaces.push(ns.to_string()),
            || crate::netns::add_netns(ns).map_err(TrackError::from),
        )
    }

    /// Records link `name` in `ns`, then runs `create`.
    pub fn add_link(
        &self,
        ns: &str,
        name: &str,
        create: impl FnOnce() -> Result<(), CmdError>,
    ) -> Result<(), TrackError> {
        self.create(
            |s| {
                s.links.push(LinkRecord {
                    ns: ns.to_string(),
                    name: name.to_string(),
                })
            },
            || create().map_err(TrackError::from),
        )
    }

    /// Spawns `cmd` and records its PID before anything else happens.
    pub fn spawn(&self, cmd: &mut Command, what: &str) -> Result<Child, TrackError> {
        let mut state = self.lock();
        let child = cmd.spawn().map_err(|source| {
            TrackError::Cmd(CmdError::Spawn {
                command: render(cmd),
                source,
            })
        })?;
        if let Some(pid) = Pid::current(child.id()) {
            state.processes.push(ProcessRecord {
                pid,
                what: what.to_string(),
            });
            state.save()?;
        }
        Ok(child)
    }

    /// Forgets a process that has been reaped.
    pub fn release(&self, pid: u32) -> Result<(), StateError> {
        let mut state = self.lock();
        state.processes.retain(|p| p.pid.pid != pid);
        state.save()
    }
}

/// Errors of [`Tracker`] steps.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cmd(#[from] CmdError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: PathBuf) -> RunState {
        RunState {
            prefix: "wlabc123".into(),
            source: "/x/lab.toml".into(),
            lab: "demo".into(),
            dir,
            owner: None,
            namespaces: vec!["wlabc123-a1".into()],
            links: vec![LinkRecord {
                ns: "wlabc123-a1".into(),
                name: "wl0".into(),
            }],
            processes: vec![ProcessRecord {
                pid: Pid {
                    pid: 42,
                    start_time: 7,
                },
                what: "warden gw".into(),
            }],
        }
    }

    #[test]
    fn save_load_roundtrip() {
        let dir = std::env::temp_dir().join(format!("wl-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = sample(dir.clone());
        state.save().unwrap();
        assert_eq!(RunState::load(&state.path()).unwrap(), state);
        std::fs::write(state.path(), b"{not json").unwrap();
        assert!(matches!(
            RunState::load(&state.path()),
            Err(StateError::Json { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            RunState::load(&state.path()),
            Err(StateError::Io { .. })
        ));
    }

    #[test]
    fn owns_only_prefixed_namespaces() {
        let s = sample(PathBuf::from("/nonexistent"));
        assert!(s.owns_ns("wlabc123-a1"));
        assert!(!s.owns_ns("wlabc123"));
        assert!(!s.owns_ns("wlabc123-"));
        assert!(!s.owns_ns("wlabc1234-a1"));
        assert!(!s.owns_ns("other-a1"));
        assert_eq!(s.ns("b1"), "wlabc123-b1");
    }

    #[test]
    fn tracker_saves_before_create_runs() {
        let dir = std::env::temp_dir().join(format!("wl-track-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tracker = Tracker::new(sample(dir.clone()));
        let path = tracker.snapshot().path();
        let seen: Result<RunState, TrackError> = tracker.create(
            |s| s.namespaces.push("wlabc123-b1".into()),
            || Ok(RunState::load(&path)?),
        );
        assert!(seen
            .unwrap()
            .namespaces
            .contains(&"wlabc123-b1".to_string()));
        let mut child = tracker
            .spawn(Command::new("sleep").arg("5"), "sleep")
            .unwrap();
        let pid = child.id();
        let on_disk = RunState::load(&path).unwrap();
        assert!(on_disk
            .processes
            .iter()
            .any(|p| p.pid.pid == pid && p.what == "sleep"));
        crate::process::kill_and_reap(&mut child);
        tracker.release(pid).unwrap();
        assert!(!RunState::load(&path)
            .unwrap()
            .processes
            .iter()
            .any(|p| p.pid.pid == pid));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
