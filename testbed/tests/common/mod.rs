//! Helpers shared by the lab integration tests: the root check, the warden
//! binary next to warden-lab, the cleanup guard, drop-counter arithmetic.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataplane::counters::DropReason;
use testbed::checks::counter;
use testbed::lab::{self, Selector};
use testbed::{netns, state};

const BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The warden binary built next to warden-lab.
pub fn warden_bin() -> PathBuf {
    let warden = Path::new(BIN).with_file_name("warden");
    assert!(
        warden.is_file(),
        "no {}: build it first (`cargo build --release -p dataplane -p testbed --bins`)",
        warden.display()
    );
    warden
}

/// Removes whatever a failed run left, by prefix (the lab's own drop guard
/// does this first; this catches a panic inside `lab::up`).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = lab::down(&Selector::Prefix(self.0.clone()));
        let prefix = format!("{}-", self.0);
        for ns in netns::list_netns().unwrap_or_default() {
            if ns.starts_with(&prefix) {
                let _ = netns::cleanup_netns(&ns, &[]);
            }
        }
        for dir in state::base_dirs() {
            let _ = std::fs::remove_dir_all(dir.join(&self.0));
        }
    }
}

/// Every drop counter of a `warden stats --json` answer, by reason name.
pub fn drops(stats: &serde_json::Value) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .iter()
        .map(|r| {
            let n = counter(stats, &format!("drops.{}", r.name()))
                .unwrap_or_else(|e| panic!("{e} in {stats}"));
            (r.name(), n)
        })
        .collect()
}

/// What each counter moved by between two [`drops`] readings.
pub fn delta(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(k, v)| (*k, v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .collect()
}
