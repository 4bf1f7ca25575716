//! Rules that can never match: every flow they match is matched first by
//! earlier rules.
//!
//! A rule's region is `from × to × ports`, where a selector list stands for
//! the endpoints `S × any address ∪ any subject × A` (S the subjects its
//! identity and `unauthenticated` selectors name, A the union of its CIDRs).
//! A union of such sets is again `(∪S) × any ∪ any × (∪A)`, so coverage of
//! one list by a union of lists is decided exactly on (∪S, ∪A).
//!
//! Two checks, both sound (a reported rule really is unreachable):
//! * one earlier rule covers the rule in all three dimensions;
//! * earlier rules that each cover it in two dimensions together cover the
//!   third (allow 80; allow 443; deny 80, 443 — or the same split over
//!   sources or destinations).
//!
//! Candidates are found with the compiled vectors: a rule that covers this
//! one must contain a sample flow of it, so only the rules matching that
//! sample (in the dimensions required) are examined.
//!
//! Not detected: a rule covered only by a combination that splits more
//! than one dimension at once. Such a rule compiles and is simply never
//! the answer.
//!
//! L7 rules cover nothing (they do not decide every flow they match, only
//! the requests their clause allows), so they are never counted as
//! covering; an L7 rule is still reported when earlier L4 rules cover it.
//! FQDN selectors stand for destinations known only at run time: a list
//! covers another's FQDN patterns only by naming them too (or by matching
//! every subject, which every destination is).

use std::net::Ipv4Addr;

use crate::compile::{CompileError, CompiledPolicy};
use crate::model::{
    Endpoint, FlowQuery, PortRange, Proto, RuleLoc, Subject, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};
use overlay::Ipv4Cidr;

/// Endpoints one selector list matches (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct EndpointSet {
    /// Bit `i` for document `i`, bit `n_docs` for unauthenticated.
    subjects: Vec<u64>,
    n_subjects: usize,
    /// Inclusive, sorted, merged.
    addrs: Vec<(u32, u32)>,
    /// FQDN patterns named.
    fqdns: u64,
}

impl EndpointSet {
    pub(crate) fn new(
        any: bool,
        docs: &[u32],
        unauth: bool,
        cidrs: &[Ipv4Cidr],
        fqdns: u64,
        n_docs: usize,
    ) -> Self {
        let n_subjects = n_docs + 1;
        let mut subjects = vec![0u64; n_subjects.div_ceil(64)];
        let mut set = |i: usize| subjects[i / 64] |= 1 << (i % 64);
        if any {
            (0..n_subjects).for_each(&mut set);
        } else {
            docs.iter().for_each(|&d| set(d as usize));
            if unauth {
                set(n_docs);
            }
        }
        let addrs = if any {
            vec![(0, u32::MAX)]
        } else {
            merge(
                cidrs
                    .iter()
                    .map(|c| {
                        let lo = u32::from(c.address()) & c.mask();
                        (lo, lo | !c.mask())
                    })
                    .collect(),
            )
        };
        EndpointSet {
            subjects,
            n_subjects,
            addrs,
            fqdns,
        }
    }

    fn all_subjects(&self) -> bool {
        self.subjects
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            == self.n_subjects
    }

    fn covers(&self, r: &EndpointSet) -> bool {
        self.all_subjects()
            || (r
                .subjects
                .iter()
                .zip(&self.subjects)
                .all(|(a, b)| a & !b == 0)
                && ranges_cover(&self.addrs, &r.addrs)
                && r.fqdns & !self.fqdns == 0)
    }

    fn union(&mut self, o: &EndpointSet) {
        for (a, b) in self.subjects.iter_mut().zip(&o.subjects) {
            *a |= b;
        }
        let mut all = std::mem::take(&mut self.addrs);
        all.extend_from_slice(&o.addrs);
        self.addrs = merge(all);
        self.fqdns |= o.fqdns;
    }

    fn empty_like(&self) -> EndpointSet {
        EndpointSet {
            subjects: vec![0; self.subjects.len()],
            n_subjects: self.n_subjects,
            addrs: Vec::new(),
            fqdns: 0,
        }
    }

    /// An endpoint inside the set, and the FQDN bits it is learned under
    /// (only when the set has neither subjects nor addresses).
    fn sample(&self) -> (Endpoint, u64) {
        let first = self
            .subjects
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize);
        match first {
            Some(s) => (
                Endpoint {
                    subject: if s + 1 == self.n_subjects {
                        Subject::Unauthenticated
                    } else {
                        Subject::Identity(s as u32)
                    },
                    addr: None,
                },
                0,
            ),
            None if !self.addrs.is_empty() || self.fqdns == 0 => (
                Endpoint {
                    subject: Subject::Unauthenticated,
                    addr: self.addrs.first().map(|&(lo, _)| Ipv4Addr::from(lo)),
                },
                0,
            ),
            None => (
                Endpoint {
                    subject: Subject::Unauthenticated,
                    addr: None,
                },
                self.fqdns & self.fqdns.wrapping_neg(),
            ),
        }
    }
}

/// Protocol and port space one rule matches.
#[derive(Debug, Clone, Default)]
pub(crate) struct PortSet {
    tcp: Vec<(u32, u32)>,
    udp: Vec<(u32, u32)>,
    icmp: bool,
    other: bool,
}

impl PortSet {
    pub(crate) fn new(proto: Proto, ports: &[PortRange]) -> Self {
        let all = vec![(0, u32::from(u16::MAX))];
        let listed = || {
            if ports.is_empty() {
                all.clone()
            } else {
                merge(
                    ports
                        .iter()
                        .map(|p| (u32::from(p.lo), u32::from(p.hi)))
                        .collect(),
                )
            }
        };
        match proto {
            Proto::Any => PortSet {
                tcp: all.clone(),
                udp: all.clone(),
                icmp: true,
                other: true,
            },
            Proto::Tcp => PortSet {
                tcp: listed(),
                ..PortSet::default()
            },
            Proto::Udp => PortSet {
                udp: listed(),
                ..PortSet::default()
            },
            Proto::Icmp => PortSet {
                icmp: true,
                ..PortSet::default()
            },
        }
    }

    fn covers(&self, r: &PortSet) -> bool {
        ranges_cover(&self.tcp, &r.tcp)
            && ranges_cover(&self.udp, &r.udp)
            && (self.icmp || !r.icmp)
            && (self.other || !r.other)
    }

    fn union(&mut self, o: &PortSet) {
        let mut t = std::mem::take(&mut self.tcp);
        t.extend_from_slice(&o.tcp);
        self.tcp = merge(t);
        let mut u = std::mem::take(&mut self.udp);
        u.extend_from_slice(&o.udp);
        self.udp = merge(u);
        self.icmp |= o.icmp;
        self.other |= o.other;
    }

    /// (protocol, port) inside the set.
    fn sample(&self) -> (u8, u16) {
        if let Some(&(lo, _)) = self.tcp.first() {
            (IPPROTO_TCP, lo as u16)
        } else if let Some(&(lo, _)) = self.udp.first() {
            (IPPROTO_UDP, lo as u16)
        } else if self.icmp {
            (IPPROTO_ICMP, 0)
        } else {
            // GRE: a protocol only `any` matches.
            (47, 0)
        }
    }
}

/// What one rule matches.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    pub from: EndpointSet,
    pub to: EndpointSet,
    pub ports: PortSet,
    /// An L7 rule: covers nothing.
    pub l7: bool,
}

/// Sort and merge inclusive ranges (adjacent ones too).
fn merge(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Whether merged ranges `big` contain every range of `small`.
fn ranges_cover(big: &[(u32, u32)], small: &[(u32, u32)]) -> bool {
    small.iter().all(|&(lo, hi)| {
        // The merged range that could hold `lo`.
        let i = big.partition_point(|&(_, h)| h < lo);
        big.get(i).is_some_and(|&(l, h)| l <= lo && hi <= h)
    })
}

/// Report the first rule (in file order) that can never match.
pub(crate) fn check(
    c: &CompiledPolicy,
    regions: &[Region],
    locs: &[RuleLoc],
) -> Result<(), CompileError> {
    for (i, r) in regions.iter().enumerate() {
        if i == 0 {
            continue;
        }
        let (src, _) = r.from.sample();
        let (dst, fq) = r.to.sample();
        let (proto, dst_port) = r.ports.sample();
        let [ss, sa, ds, da, p] = c.classes_of(&FlowQuery {
            src,
            dst,
            proto,
            dst_port,
            dst_fqdns: fq,
        });
        let shadowed = |by: Vec<usize>| CompileError::Shadowed {
            rule: locs[i],
            by: by.iter().map(|&q| locs[q]).collect(),
        };
        let l4 = |q: &usize| !regions[*q].l7;
        let all = c.rules_matching([Some(ss), Some(sa), Some(ds), Some(da), Some(p)], fq, i);
        if let Some(&q) = all.iter().filter(|q| l4(q)).find(|&&q| {
            let o = &regions[q];
            o.from.covers(&r.from) && o.to.covers(&r.to) && o.ports.covers(&r.ports)
        }) {
            return Err(shadowed(vec![q]));
        }
        // Split over sources.
        let qs: Vec<usize> = c
            .rules_matching([None, None, Some(ds), Some(da), Some(p)], fq, i)
            .into_iter()
            .filter(l4)
            .filter(|&q| regions[q].to.covers(&r.to) && regions[q].ports.covers(&r.ports))
            .collect();
        let mut u = r.from.empty_like();
        qs.iter().for_each(|&q| u.union(&regions[q].from));
        if !qs.is_empty() && u.covers(&r.from) {
            return Err(shadowed(qs));
        }
        // Split over destinations.
        let qs: Vec<usize> = c
            .rules_matching([Some(ss), Some(sa), None, None, Some(p)], 0, i)
            .into_iter()
            .filter(l4)
            .filter(|&q| regions[q].from.covers(&r.from) && regions[q].ports.covers(&r.ports))
            .collect();
        let mut u = r.to.empty_like();
        qs.iter().for_each(|&q| u.union(&regions[q].to));
        if !qs.is_empty() && u.covers(&r.to) {
            return Err(shadowed(qs));
        }
        // Split over protocols and ports.
        let qs: Vec<usize> = c
            .rules_matching([Some(ss), Some(sa), Some(ds), Some(da), None], fq, i)
            .into_iter()
            .filter(l4)
            .filter(|&q| regions[q].from.covers(&r.from) && regions[q].to.covers(&r.to))
            .collect();
        let mut u = PortSet::default();
        qs.iter().for_each(|&q| u.union(&regions[q].ports));
        if !qs.is_empty() && u.covers(&r.ports) {
            return Err(shadowed(qs));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            merge(vec![(5, 9), (0, 3), (4, 4), (20, 30)]),
            [(0, 9), (20, 30)]
        );
        assert!(ranges_cover(&[(0, 9), (20, 30)], &[(2, 9), (25, 25)]));
        assert!(!ranges_cover(&[(0, 9), (20, 30)], &[(9, 20)]));
        assert!(ranges_cover(&[(0, 9)], &[]));
        assert!(!ranges_cover(&[], &[(1, 1)]));
    }

    #[test]
    fn endpoint_sets_cover_as_cross_products() {
        let c: Ipv4Cidr = "10.0.0.0/8".parse().unwrap();
        let small: Ipv4Cidr = "10.1.0.0/16".parse().unwrap();
        let any = EndpointSet::new(true, &[], false, &[], 0, 3);
        let docs = EndpointSet::new(false, &[0, 1], false, &[], 0, 3);
        let net = EndpointSet::new(false, &[], false, &[c], 0, 3);
        let subnet = EndpointSet::new(false, &[], false, &[small], 0, 3);
        let mixed = EndpointSet::new(false, &[0], false, &[small], 0, 3);
        assert!(any.covers(&docs) && any.covers(&net));
        assert!(!docs.covers(&any) && !net.covers(&any));
        assert!(net.covers(&subnet) && !subnet.covers(&net));
        // Documents anywhere are not inside a CIDR, and a CIDR holds any subject.
        assert!(!net.covers(&docs) && !docs.covers(&net));
        assert!(!docs.covers(&mixed) && !net.covers(&mixed));
        let mut u = docs.empty_like();
        u.union(&docs);
        u.union(&net);
        assert!(u.covers(&mixed));
        // All documents plus unauthenticated is every subject.
        let everyone = EndpointSet::new(false, &[0, 1, 2], true, &[], 0, 3);
        assert!(everyone.covers(&any));
    }
}
