//! Identity documents and their 32-bit ids.
//!
//! A document names a workload (`spiffe://lab/ns/payments/sa/api`) and
//! carries labels and attested attributes: the SHA-256 of its executable
//! or image and the id of the host it runs on. Its id is the first 32 bits
//! of SHA-256 over the canonical form, so changing any attribute (a new
//! binary) gives a new id that no policy knows.

use std::collections::BTreeMap;
use std::fmt;

use ring::digest;

/// The identity id carried in the identity header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityId(pub u32);

impl IdentityId {
    /// No identity: what a flow gets when nothing vouches for it.
    pub const UNAUTHENTICATED: IdentityId = IdentityId(0);
}

impl fmt::Debug for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityId({:08x})", self.0)
    }
}

impl fmt::Display for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// An identity document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityDoc {
    /// Such as `spiffe://lab/ns/payments/sa/api`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// SHA-256 of the workload's executable or image.
    pub exe_sha256: Option<[u8; 32]>,
    /// The host the workload runs on.
    pub host_id: Option<String>,
}

impl IdentityDoc {
    /// The canonical byte form the id is computed over: a version line,
    /// then one `key=value` line per field, labels sorted by key. Newlines
    /// and `=` inside keys are escaped so two documents never share a form.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = String::from("warden-identity-v1\n");
        line(&mut out, "name", &self.name);
        if let Some(h) = &self.exe_sha256 {
            line(&mut out, "exe_sha256", &hex(h));
        }
        if let Some(h) = &self.host_id {
            line(&mut out, "host_id", h);
        }
        for (k, v) in &self.labels {
            line(&mut out, &format!("label.{}", escape(k)), v);
        }
        out.into_bytes()
    }

    /// The 32-bit id: SHA-256 of the canonical form, first four bytes. Id 0
    /// is reserved for "unauthenticated"; a document that hashes to it gets 1.
    pub fn id(&self) -> IdentityId {
        let d = digest::digest(&digest::SHA256, &self.canonical());
        let b = d.as_ref();
        let id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        IdentityId(id.max(1))
    }
}

fn line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    out.push_str(&escape(value));
    out.push('\n');
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('=', "\\=")
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parse 64 hex digits into a SHA-256 value.
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> IdentityDoc {
        IdentityDoc {
            name: "spiffe://lab/ns/payments/sa/api".into(),
            labels: [("app".to_string(), "api".to_string())].into(),
            exe_sha256: Some([7; 32]),
            host_id: Some("node-1".into()),
        }
    }

    #[test]
    fn id_is_stable_and_changes_with_any_attribute() {
        let d = doc();
        assert_eq!(d.id(), doc().id());
        let mut e = doc();
        e.exe_sha256 = Some([8; 32]);
        assert_ne!(d.id(), e.id(), "a new binary is a new identity");
        let mut e = doc();
        e.labels.insert("tier".into(), "gold".into());
        assert_ne!(d.id(), e.id());
        assert_ne!(d.id(), IdentityId::UNAUTHENTICATED);
    }

    #[test]
    fn canonical_form_cannot_be_confused_by_separators() {
        let a = IdentityDoc {
            name: "x\nexe_sha256=00".into(),
            ..Default::default()
        };
        let b = IdentityDoc {
            name: "x".into(),
            ..Default::default()
        };
        assert_ne!(a.canonical(), b.canonical());
    }

    #[test]
    fn sha256_hex_roundtrip() {
        let h = [0xab; 32];
        assert_eq!(parse_sha256(&hex(&h)), Some(h));
        assert_eq!(parse_sha256("zz"), None);
        assert_eq!(parse_sha256(&"g".repeat(64)), None);
    }
}
