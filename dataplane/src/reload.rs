//! Hot reload, on the control side (`warden reload`, SIGHUP): the config
//! file is read and validated again; a file with an error keeps the running
//! config (the error names file:line:column); a change that needs a restart
//! (the instance, the underlay, the ports, the set of peers or VNIs,
//! identity turned on or off) is refused with what changed. Otherwise the
//! new config tables are built here, off the packet path (secret files are
//! read here), and handed to every worker over a channel; each takes them
//! between bursts ([`crate::engine::Engine::apply`]) and answers with what
//! it did. Nothing on the packet path locks or waits: a worker polls its
//! channel once per poll round.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use config::WardenConfig;
use crossbeam_channel::Sender;

use crate::worker::{Inbox, Msg};
use serde::{Deserialize, Serialize};

use crate::engine::{ReloadReport, Tables};
use crate::stats::Names;

/// What a worker is handed.
#[derive(Debug)]
pub struct Request {
    pub tables: Arc<Tables>,
    /// The new id of each old rule (by name); None: gone.
    pub rule_map: Vec<Option<usize>>,
    pub done: Sender<Result<ReloadReport, String>>,
}

/// How long a worker may take to answer (it answers between bursts; a
/// worker that does not is stuck, and the reload says so).
const WORKER_TIMEOUT: Duration = Duration::from_secs(5);

/// What `warden reload` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// The file reloaded.
    pub file: String,
    /// One line per kind of change taken (policy, identities, ...).
    pub changed: Vec<String>,
    /// Per worker, in order.
    pub workers: Vec<ReloadReport>,
}

/// Reloads one running instance.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    running: Mutex<WardenConfig>,
    names: Arc<RwLock<Names>>,
    workers: Vec<Sender<Msg>>,
}

impl Reloader {
    /// For the instance started from `path` with `running`, whose stats
    /// read `names`; returns it and one inbox per worker.
    pub fn new(
        path: PathBuf,
        running: WardenConfig,
        names: Arc<RwLock<Names>>,
        workers: usize,
    ) -> (Reloader, Vec<Inbox>) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers.max(1))
            .map(|_| crossbeam_channel::bounded(1))
            .unzip();
        let r = Reloader {
            path,
            running: Mutex::new(running),
            names,
            workers: txs,
        };
        (r, rxs)
    }

    /// The channels to the workers (for other requests than reloads).
    pub fn workers(&self) -> &[Sender<Msg>] {
        &self.workers
    }

    /// Reload the file; the error says why nothing changed.
    pub fn reload(&self) -> Result<Outcome, String> {
        let new = config::load_warden(&self.path)
            .map_err(|e| format!("{e} (the running config is unchanged)"))?;
        let mut running = self.running.lock().map_err(|_| "reload state poisoned")?;
        if let Some(why) = needs_restart(&running, &new) {
            return Err(format!(
                "{}: {why}: restart warden to apply this (the running config is unchanged)",
                self.path.display()
            ));
        }
        let tables = Tables::build(&new).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let tables = Arc::new(tables);
        let old_rules = crate::stats::rule_names(running.policy.as_ref());
        let new_rules = crate::stats::rule_names(new.policy.as_ref());
        let rule_map: Vec<Option<usize>> = old_rules
            .iter()
            .map(|r| new_rules.iter().position(|n| n == r))
            .collect();
        let mut reports = Vec::new();
        for (w, tx) in self.workers.iter().enumerate() {
            let (done, answer) = crossbeam_channel::bounded(1);
            let req = Request {
                tables: tables.clone(),
                rule_map: rule_map.clone(),
                done,
            };
            tx.send_timeout(Msg::Reload(req), WORKER_TIMEOUT)
                .map_err(|_| format!("worker {w} does not take the new config"))?;
            let report = answer
                .recv_timeout(WORKER_TIMEOUT)
                .map_err(|_| format!("worker {w} did not answer"))??;
            reports.push(report);
        }
        let changed = what_changed(&running, &new);
        if let Ok(mut names) = self.names.write() {
            *names = Names::of(&new);
        }
        *running = new;
        Ok(Outcome {
            file: self.path.display().to_string(),
            changed,
            workers: reports,
        })
    }
}

/// What in `new` cannot replace `old` without a restart, if anything.
pub fn needs_restart(old: &WardenConfig, new: &WardenConfig) -> Option<String> {
    if old.instance != new.instance {
        return Some("[instance] changed".into());
    }
    if old.underlay != new.underlay {
        return Some("[underlay] changed".into());
    }
    if old.ports.len() != new.ports.len() {
        return Some(format!(
            "the number of ports changed ({} -> {})",
            old.ports.len(),
            new.ports.len()
        ));
    }
    if let Some((o, _)) = old.ports.iter().zip(&new.ports).find(|(o, n)| o != n) {
        return Some(format!("port {} changed", o.name));
    }
    let addrs = |c: &WardenConfig| c.peers.iter().map(|p| p.address).collect::<Vec<_>>();
    if addrs(old) != addrs(new) {
        return Some("the peers' addresses changed (adding, removing or reordering peers)".into());
    }
    let vnis = |c: &WardenConfig| c.vnis.iter().map(|v| v.id).collect::<Vec<_>>();
    if vnis(old) != vnis(new) {
        return Some("the set of VNIs changed".into());
    }
    if old.identity.is_some() != new.identity.is_some() {
        return Some("[identity] was added or removed".into());
    }
    if old.flow_log != new.flow_log {
        return Some("[flow_log] changed".into());
    }
    None
}

/// One line per part of the config that differs.
fn what_changed(old: &WardenConfig, new: &WardenConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |differs: bool, what: &str| {
        if differs {
            out.push(what.to_string());
        }
    };
    note(old.policy != new.policy, "policy");
    note(old.documents != new.documents, "identity documents");
    note(old.workloads != new.workloads, "workload bindings");
    note(old.identity_maps != new.identity_maps, "identity maps");
    note(old.identity != new.identity, "identity settings and keys");
    note(old.peers != new.peers, "peers");
    note(old.vnis != new.vnis, "VNIs");
    note(old.fdb != new.fdb, "static FDB");
    note(old.neighbors != new.neighbors, "static neighbors");
    note(old.routes != new.routes, "routes");
    if out.is_empty() {
        out.push("nothing (the file is the same)".into());
    }
    out
}
