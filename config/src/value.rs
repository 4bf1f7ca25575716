//! Serde wrappers for the value types in the TOML files.
//!
//! Each wrapper parses during deserialization, so a bad value fails inside
//! the `toml` deserializer and its error carries the value's span for free.
//! The messages quote the value and say what was expected.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

use overlay::{Ipv4Cidr, MacAddr, Vni};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Deserialize a string and parse it with `FromStr`, with our own message.
macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $what:literal, $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a string with ", $expected))
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        <$inner>::from_str(s).map($name).map_err(|_| {
                            E::custom(format_args!(
                                concat!("invalid ", $what, " {:?}, expected ", $expected),
                                s
                            ))
                        })
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

string_value!(
    /// A MAC address such as `02:00:00:00:00:01`.
    MacValue,
    MacAddr,
    "MAC address",
    "six hex pairs such as \"02:00:00:00:00:01\""
);
string_value!(
    /// An IPv4 address with prefix length such as `10.1.0.1/24`.
    CidrValue,
    Ipv4Cidr,
    "CIDR",
    "ADDRESS/PREFIX such as \"10.1.0.1/24\" (prefix 0..=32)"
);
string_value!(
    /// A dotted-quad IPv4 address.
    Ipv4Value,
    Ipv4Addr,
    "IPv4 address",
    "a dotted quad such as \"10.0.0.1\""
);

/// A SHA-256 value written as 64 hex digits (either case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sha256Value(pub [u8; 32]);

/// Parse 64 hex digits; only hex digits count (`u8::from_str_radix` alone
/// would also take a `+` sign in a pair).
pub(crate) fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        identity::doc::parse_sha256(s)
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for Sha256Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_sha256_hex(&s).map(Sha256Value).ok_or_else(|| {
            de::Error::custom(format_args!(
                "invalid SHA-256 {s:?}, expected 64 hex digits (as printed by `sha256sum` or `warden identity attest`)"
            ))
        })
    }
}

/// A VXLAN network identifier, written as a TOML integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VniValue(pub Vni);

impl<'de> Deserialize<'de> for VniValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = VniValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a VNI, an integer from 0 to {}", Vni::MAX)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VniValue, E> {
                u32::try_from(v)
                    .ok()
                    .and_then(Vni::new)
                    .map(VniValue)
                    .ok_or_else(|| {
                        E::custom(format_args!(
                            "VNI {v} is out of range, expected an integer from 0 to {}",
                            Vni::MAX
                        ))
                    })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VniValue, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::custom(format_args!(
                        "VNI {v} is out of range, expected an integer from 0 to {}",
                        Vni::MAX
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A Linux network interface name: 1 to 15 bytes, no `/`, `:` or whitespace,
/// not `.` or `..` (the kernel's `dev_valid_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfName(pub String);

/// Why `s` is not a valid interface name, or `None` when it is.
pub(crate) fn ifname_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s.len() > IFNAME_MAX {
        Some("is longer than 15 bytes")
    } else if s == "." || s == ".." {
        Some("is `.` or `..`")
    } else if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        Some("contains `/`, `:` or whitespace")
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for IfName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match ifname_problem(&s) {
            None => Ok(IfName(s)),
            Some(problem) => Err(de::Error::custom(format_args!(
                "invalid interface name {s:?}: it {problem}, expected 1 to 15 bytes without `/`, `:` or whitespace"
            ))),
        }
    }
}

/// A name that becomes part of a path or a namespace name: 1 to 64 of
/// `A-Z a-z 0-9 _ . -`, not starting with `.` or `-`.
pub(crate) fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What [`is_simple_name`] accepts, for error messages.
pub(crate) const SIMPLE_NAME: &str = "1 to 64 of A-Z a-z 0-9 _ . - (not starting with . or -)";

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default)]
        mac: Option<MacValue>,
        #[serde(default)]
        vni: Option<VniValue>,
        #[serde(default)]
        cidr: Option<CidrValue>,
        #[serde(default)]
        ip: Option<Ipv4Value>,
        #[serde(default)]
        ifname: Option<IfName>,
    }

    fn err(text: &str) -> String {
        match toml::from_str::<T>(text) {
            Ok(_) => panic!("{text} parsed"),
            Err(e) => e.message().to_owned(),
        }
    }

    #[test]
    fn good_values_parse() {
        let t: T = toml::from_str(
            "mac = \"02:00:00:00:00:01\"\nvni = 16777215\ncidr = \"10.0.0.1/8\"\nip = \"1.2.3.4\"\nifname = \"eth0\"\n",
        )
        .unwrap();
        assert_eq!(t.mac.unwrap().0, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(t.vni.unwrap().0.get(), Vni::MAX);
        assert_eq!(t.cidr.unwrap().0.prefix_len(), 8);
        assert_eq!(t.ip.unwrap().0, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(t.ifname.unwrap().0, "eth0");
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        assert_eq!(
            err("mac = \"02:00\""),
            "invalid MAC address \"02:00\", expected six hex pairs such as \"02:00:00:00:00:01\""
        );
        assert_eq!(
            err("vni = 16777216"),
            "VNI 16777216 is out of range, expected an integer from 0 to 16777215"
        );
        assert_eq!(
            err("vni = -1"),
            "VNI -1 is out of range, expected an integer from 0 to 16777215"
        );
        assert_eq!(
            err("vni = \"100\""),
            "invalid type: string \"100\", expected a VNI, an integer from 0 to 16777215"
        );
        assert_eq!(
            err("cidr = \"10.0.0.1\""),
            "invalid CIDR \"10.0.0.1\", expected ADDRESS/PREFIX such as \"10.1.0.1/24\" (prefix 0..=32)"
        );
        assert_eq!(
            err("ip = \"10.0.0\""),
            "invalid IPv4 address \"10.0.0\", expected a dotted quad such as \"10.0.0.1\""
        );
        assert!(err("ifname = \"0123456789abcdef\"").contains("longer than 15 bytes"));
        assert!(err("ifname = \"a b\"").contains("whitespace"));
        assert!(err("ifname = \"\"").contains("is empty"));
        assert!(err("ifname = \"..\"").contains("`.` or `..`"));
    }

    #[test]
    fn simple_names() {
        for ok in ["gw", "node-a1", "a.b_c", "A9"] {
            assert!(is_simple_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!is_simple_name(bad), "{bad}");
        }
    }
}
