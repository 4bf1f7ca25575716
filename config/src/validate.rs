//! Helpers every validating builder shares: the failure type, duplicate
//! detection, reference messages, address checks and TOML quoting.
//!
//! A leaf module: it depends only on `error`, so `warden`, `identities`,
//! `policy` and `lab` can all use it without importing each other.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

use overlay::Ipv4Cidr;

use crate::error::{line_of, ErrorKind};

/// A validation failure: what and where (byte span in the source).
#[derive(Debug)]
pub(crate) struct Invalid {
    pub span: Range<usize>,
    pub kind: ErrorKind,
}

pub(crate) fn invalid(span: Range<usize>, kind: ErrorKind) -> Invalid {
    Invalid { span, kind }
}

/// Remembers where each key was first seen, to report duplicates with the
/// line of the first declaration.
pub(crate) struct Seen<'t, K> {
    text: &'t str,
    what: &'static str,
    first: HashMap<K, usize>,
}

impl<'t, K: Eq + Hash> Seen<'t, K> {
    pub(crate) fn new(text: &'t str, what: &'static str) -> Self {
        Seen {
            text,
            what,
            first: HashMap::new(),
        }
    }
    /// Record `key` at `span`; an error if it was seen before.
    /// `shown` is how the key appears in the message.
    pub(crate) fn insert(
        &mut self,
        key: K,
        span: Range<usize>,
        shown: impl FnOnce() -> String,
    ) -> Result<(), Invalid> {
        if let Some(&first) = self.first.get(&key) {
            return Err(invalid(
                span,
                ErrorKind::Duplicate {
                    what: self.what,
                    value: shown(),
                    first_line: line_of(self.text, first),
                },
            ));
        }
        self.first.insert(key, span.start);
        Ok(())
    }
}

/// `true` when `cidr` is its subnet's network or broadcast address (only
/// meaningful for prefixes up to /30; /31 and /32 have no such addresses).
pub(crate) fn is_network_or_broadcast(cidr: Ipv4Cidr) -> bool {
    if cidr.prefix_len() >= 31 {
        return false;
    }
    let a = u32::from(cidr.address());
    let host = a & !cidr.mask();
    host == 0 || host == !cidr.mask()
}

/// The message tail listing what a reference may name.
pub(crate) fn one_of(what: &str, names: &[&str]) -> String {
    if names.is_empty() {
        format!("one of the {what} (none is declared)")
    } else {
        let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("one of the {what}: {}", list.join(", "))
    }
}

/// `s` as a TOML basic string, escaped.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
