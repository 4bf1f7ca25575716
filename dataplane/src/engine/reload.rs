//! Hot reload, on the worker's side: new config tables are swapped in
//! between bursts (the caller hands them over; nothing on the packet path
//! waits or locks), and the learned state is made to agree with them:
//!
//! - static FDB entries (the config's and the workloads' bindings) that the
//!   new tables no longer have are removed, the new ones installed;
//! - the epoch keys are derived again from the new secrets;
//! - FQDN-learned addresses keep the patterns that are still in the policy;
//! - the per-rule counters follow their rules by name;
//! - identities this warden took from its own workload bindings are looked
//!   up again (a re-bound workload speaks for its new identity, an unbound
//!   one for none);
//! - every live flow is decided again by the new policy. A flow it no longer
//!   allows is **revoked** (both directions): its next TCP segment gets both
//!   ends reset (`revoke.rs`), anything else is dropped (`policy_revoked`).
//!   A flow now decided by another rule keeps going under it; an inspected
//!   flow whose new rule has no L7 clause is no longer parsed; a TCP flow
//!   whose new rule has one is revoked (inspection cannot start mid-stream:
//!   the client reconnects and the new connection is inspected), a UDP one
//!   is inspected from its next datagram.
//!
//! What cannot change without a restart (ports, the underlay, the set of
//! peers and VNIs, identity turned on or off) is refused by the caller
//! before it builds the tables; [`Engine::apply`] checks it again and
//! refuses without touching anything.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use identity::keys::StaticKeys;
use serde::{Deserialize, Serialize};

use super::{Ctx, Engine, Tables};
use crate::fdb::Location;
use crate::flows::{FlowRef, Verdict};

/// What one worker did with a reload.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Flows (forward directions) decided again.
    pub flows_checked: u64,
    /// Of those, refused now: revoked (with their replies).
    pub revoked: u64,
    /// Decided by another rule, or with another verdict, and still allowed.
    pub changed: u64,
    /// Static FDB entries removed and installed.
    pub fdb_removed: u64,
    pub fdb_installed: u64,
    /// How long the worker spent (its packets waited that long), in µs.
    pub micros: u64,
}

/// Flow `e`'s (source, destination) identities under the current tables:
/// those this warden took from a local binding are looked up again.
fn rebind(
    cx: &Ctx,
    old: &Tables,
    e: &crate::flows::FlowEntry,
) -> (identity::IdentityId, identity::IdentityId) {
    use crate::flows::{IdentitySource, Origin};
    let Some(id) = &cx.t.identity else {
        return (e.src_identity, e.dst_identity);
    };
    let src = match (e.origin, e.source) {
        (Origin::Port { port, mac }, IdentitySource::LocalPort) => id
            .binding_at_mac(e.key.vni, mac)
            .filter(|b| b.port == port)
            .map_or(identity::IdentityId::UNAUTHENTICATED, |b| b.identity),
        _ => e.src_identity,
    };
    let was_local = old
        .identity
        .as_ref()
        .is_some_and(|o| o.binding_at_ip(e.key.vni, e.key.flow.dst).is_some());
    let dst = match id.binding_at_ip(e.key.vni, e.key.flow.dst) {
        Some(b) => b.identity,
        None if was_local => identity::IdentityId::UNAUTHENTICATED,
        None => e.dst_identity,
    };
    (src, dst)
}

/// The static FDB entries tables `t` install: the config's and the
/// workloads' bindings.
fn statics(t: &Tables) -> Vec<(u16, overlay::MacAddr, Location)> {
    let mut v = t.fdb_static.clone();
    if let Some(id) = &t.identity {
        v.extend(
            id.bindings
                .iter()
                .map(|b| (b.vni, b.mac, Location::Port(b.port))),
        );
    }
    v
}

/// Why `new` cannot replace `old` in a running engine, if it cannot.
pub fn needs_restart(old: &Tables, new: &Tables) -> Option<String> {
    if old.underlay_port != new.underlay_port
        || old.underlay_cidr != new.underlay_cidr
        || old.underlay_gateway != new.underlay_gateway
        || old.udp_port != new.udp_port
        || old.underlay_mtu != new.underlay_mtu
    {
        return Some("the underlay changed".into());
    }
    if old.port_vni != new.port_vni {
        return Some("the ports (or their VNIs) changed".into());
    }
    let peers = |t: &Tables| t.peers.iter().map(|p| p.address).collect::<Vec<_>>();
    if peers(old) != peers(new) {
        return Some(
            "the set of peers changed (adding, removing or reordering peers needs a restart)"
                .into(),
        );
    }
    let vnis = |t: &Tables| t.vnis.iter().map(|v| (v.id, v.gateway)).collect::<Vec<_>>();
    if vnis(old) != vnis(new) {
        return Some("the set of VNIs or their gateways changed".into());
    }
    if old.identity.is_some() != new.identity.is_some() {
        return Some("identity was turned on or off".into());
    }
    None
}

impl Engine {
    /// Swap in `new` (see the module docs). `rule_map[old]` is the new id
    /// of each old rule (by name), None if it left. Between bursts only.
    pub fn apply(
        &mut self,
        new: Arc<Tables>,
        rule_map: &[Option<usize>],
    ) -> Result<ReloadReport, String> {
        if let Some(why) = needs_restart(&self.tables, &new) {
            return Err(format!("{why}: restart warden to apply this"));
        }
        let started = Instant::now();
        let mut report = ReloadReport::default();
        // Keys first: a bad secret refuses the reload with nothing changed.
        let keys = match &new.identity {
            Some(id) => {
                let mut k = StaticKeys::new(id.me, id.clock, id.secrets.clone())
                    .map_err(|e| format!("identity keys: {e}"))?;
                k.rotate(self.st.unix_now);
                Some(k)
            }
            None => None,
        };
        let old = std::mem::replace(&mut self.tables, new);
        self.st.fwd_epoch = self.st.fwd_epoch.wrapping_add(1);
        self.st.keys = keys;
        let (was, now) = (statics(&old), statics(&self.tables));
        let keep: HashSet<(u16, overlay::MacAddr)> = now.iter().map(|&(v, m, _)| (v, m)).collect();
        for &(v, mac, _) in &was {
            if !keep.contains(&(v, mac)) {
                self.st.fdb.remove_static(v, mac);
                report.fdb_removed += 1;
            }
        }
        for &(v, mac, loc) in &now {
            self.st.fdb.insert_static(v, mac, loc);
            report.fdb_installed += 1;
        }
        self.st.router.reload_statics(&old, &self.tables);
        if let (Some(o), Some(n)) = (&old.identity, &self.tables.identity) {
            let (op, np) = (
                o.policy.compiled.fqdn_patterns(),
                n.policy.compiled.fqdn_patterns(),
            );
            if op != np {
                let to: Vec<Option<u32>> = op
                    .iter()
                    .map(|p| np.iter().position(|q| q == p).map(|i| i as u32))
                    .collect();
                self.st.fqdn.remap(&to);
            }
        }
        self.counters.workers[self.worker]
            .policy
            .remap_rules(rule_map);
        self.redecide_flows(&old, &mut report);
        report.micros = started.elapsed().as_micros() as u64;
        Ok(report)
    }

    /// Decide every live forward flow again with the current tables.
    fn redecide_flows(&mut self, old: &Tables, report: &mut ReloadReport) {
        if self.tables.identity.is_none() {
            return;
        }
        let forward: Vec<FlowRef> = self
            .st
            .flows
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.verdict,
                    Verdict::Allow | Verdict::WouldDeny | Verdict::Learn
                )
            })
            .map(|(r, _)| r)
            .collect();
        let Engine {
            tables,
            st,
            pool,
            counters,
            worker,
            ..
        } = self;
        let mut cx = Ctx {
            t: tables,
            st,
            pool,
            c: &counters.workers[*worker],
        };
        // Replies of revoked flows, by their 5-tuple reversed.
        let mut revoked = HashSet::new();
        for r in forward {
            let Some(e) = cx.st.flows.get(r).copied() else {
                continue;
            };
            report.flows_checked += 1;
            // Identities that came from this warden's own bindings are
            // looked up again: a workload re-bound (or unbound) by the
            // reload speaks for its new identity (or for none).
            let (src, dst) = rebind(&cx, old, &e);
            if (src, dst) != (e.src_identity, e.dst_identity) {
                if let Some(x) = cx.st.flows.get_mut(r) {
                    (x.src_identity, x.dst_identity) = (src, dst);
                }
            }
            let dst = (!e.recheck).then_some(dst);
            let d = super::classify::redecide(&cx, &e.key, src, dst);
            let is_tcp = e.key.flow.protocol == overlay::IpProtocol::TCP;
            let refused = matches!(d.verdict, Verdict::Deny | Verdict::Reject);
            // A TCP flow's bytes cannot start being inspected mid-stream.
            let uninspectable = d.inspect.is_some() && e.l7 == crate::l7flows::NO_L7 && is_tcp;
            if refused || uninspectable {
                if let Some(x) = cx.st.flows.get_mut(r) {
                    x.verdict = Verdict::Revoked;
                    x.rule = d.rule;
                    x.recheck = false;
                }
                if let Some(x) = cx.st.flows.get(r).copied() {
                    let why = Some(crate::counters::DropReason::PolicyRevoked);
                    cx.st.log_flow(crate::flowlog::EventKind::Denied, &x, why);
                }
                revoked.insert(e.key.flow.reversed());
                report.revoked += 1;
                continue;
            }
            if d.verdict != e.verdict || d.rule != e.rule {
                report.changed += 1;
            }
            if let Some(x) = cx.st.flows.get_mut(r) {
                x.verdict = d.verdict;
                x.rule = d.rule;
            }
            match (e.l7 != crate::l7flows::NO_L7, d.inspect, d.rule) {
                (true, Some(_), rule) => cx.st.l7.redecide(e.l7, rule),
                (true, None, _) => cx.st.l7.redecide(e.l7, None),
                (false, Some(ins), Some(rule)) => {
                    // UDP (DNS): each datagram stands alone.
                    if let Some(p) = super::classify::parser_for(&e.key, ins, false) {
                        let _ = super::classify::open_inspection(&mut cx, r, rule, p, None);
                    }
                }
                _ => {}
            }
        }
        if revoked.is_empty() {
            return;
        }
        let replies: Vec<FlowRef> = cx
            .st
            .flows
            .iter()
            .filter(|(_, e)| e.verdict == Verdict::Reply && revoked.contains(&e.key.flow))
            .map(|(r, _)| r)
            .collect();
        for r in replies {
            if let Some(x) = cx.st.flows.get_mut(r) {
                x.verdict = Verdict::Revoked;
            }
        }
    }
}
