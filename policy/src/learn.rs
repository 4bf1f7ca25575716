//! Learn mode's output: a policy set that admits what was recorded.
//!
//! The engine records the flows decided in learn mode; [`propose`] turns
//! them into a `[[policy.set]]` in the instance config's own TOML, mode
//! `enforce`, that admits exactly those flows (by identity where there is
//! one, by `/32` address where nothing vouched for an endpoint) and, with
//! the default deny, nothing else. An operator reviews it, pastes it
//! before the learn set, and switches the learn set off.
//!
//! Flows recorded with L7 attributes ([`LearnedL7`]) propose L7 rules:
//! per (source, destination, protocol, port) and kind, one rule whose
//! clause lists what was seen, **exactly**: an `http` entry per method
//! with the exact paths requested with it, the TLS server names, the DNS
//! names. Exact paths keep the proposal an honest record (a prefix would
//! admit requests nobody made); the operator widens them by hand (for
//! example to `/orders/**`). Such a port is left out of the L4 rule of the
//! same pair, since an L4 allow on it would let every request through.
//! Attributes that no clause can name (a method that is not a known
//! token, a path not in normal form, a name that is not a DNS name) are
//! listed as comments.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use identity::IdentityDoc;

use crate::clause::{check_path, name_ok};
use crate::model::{FlowQuery, Subject, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use crate::select::is_glob;

/// One end of a recorded flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// Authenticated as this document (index into the documents).
    Identity(u32),
    /// Nothing vouched for it (or its identity was not known yet): its
    /// address.
    Addr(Ipv4Addr),
}

/// A flow seen in learn mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedFlow {
    pub src: Peer,
    pub dst: Peer,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (ignored unless TCP or UDP).
    pub port: u16,
    /// A request seen on the flow, if it was inspected.
    pub l7: Option<LearnedL7>,
}

/// What an inspected flow's request said (as the parsers normalised it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LearnedL7 {
    Http { method: String, path: String },
    Tls { server_name: String },
    Dns { name: String },
}

impl LearnedFlow {
    /// The flow to record for `q`, or `None` when an end has neither an
    /// identity nor an IPv4 address to write a rule with.
    pub fn from_query(q: &FlowQuery) -> Option<LearnedFlow> {
        let peer = |subject: Subject, addr: Option<Ipv4Addr>| match subject {
            Subject::Identity(i) => Some(Peer::Identity(i)),
            Subject::Unauthenticated | Subject::Unknown => addr.map(Peer::Addr),
        };
        Some(LearnedFlow {
            src: peer(q.src.subject, q.src.addr)?,
            dst: peer(q.dst.subject, q.dst.addr)?,
            proto: q.proto,
            port: q.dst_port,
            l7: None,
        })
    }
}

/// `s` as a TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The selector that names exactly `p`, or `None` for an identity index
/// past the end of `docs`.
fn selector(p: Peer, docs: &[IdentityDoc]) -> Option<String> {
    match p {
        Peer::Identity(i) => {
            let name = &docs.get(i as usize)?.name;
            // A name with `*` or `?` would be read as a glob.
            Some(if is_glob(name) {
                format!("{{ identity = {} }}", quote(name))
            } else {
                quote(name)
            })
        }
        Peer::Addr(a) => Some(format!("{{ cidr = \"{a}/32\" }}")),
    }
}

/// Ports as the config writes them: single ports as integers, runs of
/// consecutive ports as `"lo-hi"`.
fn port_list(ports: &BTreeSet<u16>) -> String {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for &p in ports {
        match runs.last_mut() {
            Some((_, hi)) if u32::from(*hi) + 1 == u32::from(p) => *hi = p,
            _ => runs.push((p, p)),
        }
    }
    let items: Vec<String> = runs
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("\"{lo}-{hi}\"")
            }
        })
        .collect();
    items.join(", ")
}

/// A `[[policy.set]]` named `set_name`, mode `enforce`, admitting exactly
/// `flows`: one rule per (source, destination, protocol), its ports
/// merged; rules sorted by their text so the output is stable. Flows of a
/// protocol other than TCP, UDP and ICMP cannot be admitted exactly (only
/// `proto = "any"` matches them, which would admit everything between the
/// two ends) and are listed as comments instead, as are flows naming an
/// unknown document.
pub fn propose(flows: &[LearnedFlow], docs: &[IdentityDoc], set_name: &str) -> String {
    // (from, to, proto name) -> ports (empty for icmp)
    let mut rules: BTreeMap<(String, String, &'static str), BTreeSet<u16>> = BTreeMap::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    // (from, to, proto, port) -> http method -> paths; server names; DNS names.
    type Key = (String, String, &'static str, u16);
    let mut http: BTreeMap<Key, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut tls: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    let mut dns: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for f in flows {
        let (Some(from), Some(to)) = (selector(f.src, docs), selector(f.dst, docs)) else {
            skipped.insert(format!(
                "{:?} -> {:?} proto {} port {}: unknown identity document",
                f.src, f.dst, f.proto, f.port
            ));
            continue;
        };
        let proto = match f.proto {
            IPPROTO_TCP => "tcp",
            IPPROTO_UDP => "udp",
            IPPROTO_ICMP => "icmp",
            other => {
                skipped.insert(format!(
                    "from {from} to {to} proto {other}: no rule admits only this protocol"
                ));
                continue;
            }
        };
        if let (Some(l7), "tcp" | "udp") = (&f.l7, proto) {
            let key = (from.clone(), to.clone(), proto, f.port);
            let note = |what: &str| format!("from {from} to {to} {proto} port {}: {what}", f.port);
            match l7 {
                LearnedL7::Http { method, path } if proto == "tcp" => {
                    if l7::http::Method::from_bytes(method.as_bytes()).is_none() {
                        skipped.insert(note(&format!(
                            "HTTP method {method:?} is not a known token"
                        )));
                    } else if check_path(path).is_some() {
                        skipped.insert(note(&format!(
                            "HTTP path {path:?} cannot be written as a rule"
                        )));
                    } else {
                        http.entry(key)
                            .or_default()
                            .entry(method.clone())
                            .or_default()
                            .insert(path.clone());
                    }
                }
                LearnedL7::Tls { server_name } if proto == "tcp" && name_ok(server_name) => {
                    tls.entry(key).or_default().insert(server_name.clone());
                }
                LearnedL7::Dns { name } if name_ok(name) => {
                    dns.entry(key).or_default().insert(name.clone());
                }
                other => {
                    skipped.insert(note(&format!("{other:?} cannot be written as a rule")));
                }
            }
            continue;
        }
        let ports = rules.entry((from, to, proto)).or_default();
        if proto != "icmp" {
            ports.insert(f.port);
        }
    }
    // A port with L7 rules is not also allowed at L4.
    for (from, to, proto, port) in http.keys().chain(tls.keys()).chain(dns.keys()) {
        if let Some(ports) = rules.get_mut(&(from.clone(), to.clone(), *proto)) {
            ports.remove(port);
            if ports.is_empty() {
                rules.remove(&(from.clone(), to.clone(), *proto));
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[[policy.set]]\nname = {}\nmode = \"enforce\"",
        quote(set_name)
    );
    for line in &skipped {
        let _ = writeln!(out, "# not admitted: {}", line.replace('\n', " "));
    }
    let list =
        |v: &mut dyn Iterator<Item = &String>| v.map(|s| quote(s)).collect::<Vec<_>>().join(", ");
    let l7_rule = |out: &mut String, (from, to, proto, port): &Key, clause: String| {
        let _ = writeln!(
            out,
            "\n[[policy.set.rule]]\nfrom = [{from}]\nto = [{to}]\nproto = \"{proto}\"\nports = [{port}]\naction = \"allow\"\n{clause}"
        );
    };
    for (key, methods) in &http {
        let entries: Vec<String> = methods
            .iter()
            .map(|(m, paths)| {
                format!(
                    "{{ methods = [{}], paths = [{}] }}",
                    quote(m),
                    list(&mut paths.iter())
                )
            })
            .collect();
        l7_rule(&mut out, key, format!("http = [{}]", entries.join(", ")));
    }
    for (key, names) in &tls {
        l7_rule(
            &mut out,
            key,
            format!("tls = [{{ server_names = [{}] }}]", list(&mut names.iter())),
        );
    }
    for (key, names) in &dns {
        l7_rule(
            &mut out,
            key,
            format!("dns = [{{ names = [{}] }}]", list(&mut names.iter())),
        );
    }
    for ((from, to, proto), ports) in &rules {
        let _ = writeln!(
            out,
            "\n[[policy.set.rule]]\nfrom = [{from}]\nto = [{to}]\nproto = \"{proto}\""
        );
        if !ports.is_empty() {
            let _ = writeln!(out, "ports = [{}]", port_list(ports));
        }
        let _ = writeln!(out, "action = \"allow\"");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str) -> IdentityDoc {
        IdentityDoc {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn merges_ports_and_sorts() {
        let docs = [doc("b"), doc("a"), doc("odd*name")];
        let f = |src, dst, proto, port| LearnedFlow {
            src,
            dst,
            proto,
            port,
            l7: None,
        };
        let a = Peer::Identity(1);
        let b = Peer::Identity(0);
        let ip = Peer::Addr(Ipv4Addr::new(10, 0, 0, 9));
        let flows = [
            f(b, a, 6, 443),
            f(a, b, 6, 82),
            f(a, b, 6, 80),
            f(a, b, 6, 81),
            f(a, b, 6, 80),
            f(a, b, 6, 90),
            f(ip, Peer::Identity(2), 1, 0),
            f(ip, Peer::Identity(2), 1, 7),
            f(a, b, 47, 0),
            f(Peer::Identity(9), b, 6, 1),
        ];
        let text = propose(&flows, &docs, "learned");
        assert_eq!(
            text,
            "[[policy.set]]\nname = \"learned\"\nmode = \"enforce\"\n\
             # not admitted: Identity(9) -> Identity(0) proto 6 port 1: unknown identity document\n\
             # not admitted: from \"a\" to \"b\" proto 47: no rule admits only this protocol\n\
             \n[[policy.set.rule]]\nfrom = [\"a\"]\nto = [\"b\"]\nproto = \"tcp\"\nports = [\"80-82\", 90]\naction = \"allow\"\n\
             \n[[policy.set.rule]]\nfrom = [\"b\"]\nto = [\"a\"]\nproto = \"tcp\"\nports = [443]\naction = \"allow\"\n\
             \n[[policy.set.rule]]\nfrom = [{ cidr = \"10.0.0.9/32\" }]\nto = [{ identity = \"odd*name\" }]\nproto = \"icmp\"\naction = \"allow\"\n"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
