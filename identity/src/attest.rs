//! Attestation: what a warden measures about a workload (the SHA-256 of its
//! executable), how a document is printed for the config, and how wardens
//! themselves are named on the wire.
//!
//! `warden identity attest --exe PATH --name NAME --label k=v` is
//! [`sha256_file`] plus [`IdentityDoc::to_toml`]; the output pastes into a
//! workload's `[identity]` table of the config.

use std::fmt;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use ring::digest;

use crate::doc::{hex, IdentityDoc};

/// A warden's id on the wire and in key derivation: the first 32 bits of
/// SHA-256 over `"warden-id-v1\n" + name` (see [`warden_id_of`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WardenId(pub u32);

impl fmt::Debug for WardenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WardenId({:08x})", self.0)
    }
}

impl fmt::Display for WardenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The id of the warden whose `[identity] warden_id` string is `name`.
pub fn warden_id_of(name: &str) -> WardenId {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"warden-id-v1\n");
    ctx.update(name.as_bytes());
    let d = ctx.finish();
    let mut first = [0u8; 4];
    first.copy_from_slice(d.as_ref().get(..4).unwrap_or(&[0; 4]));
    WardenId(u32::from_be_bytes(first))
}

/// SHA-256 of a file's contents, read in 64 KiB pieces so that a large
/// binary or image never sits in memory whole.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        ctx.update(buf.get(..n).unwrap_or_default());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

impl IdentityDoc {
    /// The document as the body of a TOML table, one key per line:
    /// `name`, `labels` (an inline table, always present), then
    /// `exe_sha256` (64 hex digits) and `host_id` when set. These are the
    /// key names the config schema reads back.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("name = ");
        toml_string(&mut out, &self.name);
        out.push_str("\nlabels = {");
        for (i, (k, v)) in self.labels.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            toml_key(&mut out, k);
            out.push_str(" = ");
            toml_string(&mut out, v);
        }
        out.push_str(if self.labels.is_empty() {
            "}\n"
        } else {
            " }\n"
        });
        if let Some(h) = &self.exe_sha256 {
            out.push_str("exe_sha256 = \"");
            out.push_str(&hex(h));
            out.push_str("\"\n");
        }
        if let Some(h) = &self.host_id {
            out.push_str("host_id = ");
            toml_string(&mut out, h);
            out.push('\n');
        }
        out
    }
}

/// A key: bare when TOML allows it (`A-Za-z0-9_-`), quoted otherwise.
fn toml_key(out: &mut String, k: &str) {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        out.push_str(k);
    } else {
        toml_string(out, k);
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped
/// (TOML forbids raw control characters in basic strings).
fn toml_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::parse_sha256;
    use std::collections::BTreeMap;
    use std::io::Write;

    #[test]
    fn warden_id_matches_the_spec() {
        // First four bytes of SHA-256("warden-id-v1\nnode-a"), computed
        // independently with `printf 'warden-id-v1\nnode-a' | sha256sum`.
        let d = digest::digest(&digest::SHA256, b"warden-id-v1\nnode-a");
        let b = d.as_ref();
        let want = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        assert_eq!(warden_id_of("node-a"), WardenId(want));
        assert_eq!(warden_id_of("node-a").0, 0xb362_88ed);
        assert_ne!(warden_id_of("node-a"), warden_id_of("node-b"));
        assert_eq!(format!("{:?}", WardenId(0xab)), "WardenId(000000ab)");
    }

    #[test]
    fn sha256_of_a_file_streams_over_buffer_boundaries() {
        let dir = std::env::temp_dir().join(format!("warden-attest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exe");
        // 200 KiB + 3: several full reads and a short one.
        let data: Vec<u8> = (0..200 * 1024 + 3).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let want = digest::digest(&digest::SHA256, &data);
        assert_eq!(sha256_file(&path).unwrap().as_slice(), want.as_ref());
        // The empty file has the well-known digest.
        std::fs::File::create(&path).unwrap();
        assert_eq!(
            hex(&sha256_file(&path).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            sha256_file(&dir.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn toml_output_reads_back_as_the_same_document() {
        let doc = IdentityDoc {
            name: "spiffe://lab/ns/payments/sa/\"api\"\\x\n".into(),
            labels: [
                ("app".to_string(), "api".to_string()),
                ("team name".to_string(), "a\tb\u{1}".to_string()),
            ]
            .into(),
            exe_sha256: Some([0xab; 32]),
            host_id: Some("node-1".into()),
        };
        let text = doc.to_toml();
        let v: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(v["name"].as_str(), Some(doc.name.as_str()));
        let labels: BTreeMap<String, String> = v["labels"]
            .as_table()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(labels, doc.labels);
        assert_eq!(
            parse_sha256(v["exe_sha256"].as_str().unwrap()),
            doc.exe_sha256
        );
        assert_eq!(v["host_id"].as_str(), Some("node-1"));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn toml_output_of_a_minimal_document() {
        let doc = IdentityDoc {
            name: "w".into(),
            ..Default::default()
        };
        assert_eq!(doc.to_toml(), "name = \"w\"\nlabels = {}\n");
        let v: toml::Table = toml::from_str(&doc.to_toml()).unwrap();
        assert_eq!(v.len(), 2);
    }
}
