//! Rule-side patterns, for the policy crate to compile and the engine to
//! run on what the parsers produced. Pure functions over bytes; the
//! pattern types borrow the compiled policy's strings.
//!
//! Inputs are the parsers' normalised outputs: paths from
//! [`crate::http::normalize_path`], hosts from
//! [`crate::http::normalize_host`] (lowercase, default port dropped), DNS
//! and TLS names lowercased. Patterns must be written in the same normal
//! form — [`PathPattern::new`] and [`NamePattern::new`] check that, so a
//! rule such as `/api/../admin` or `/%61dmin` is refused when the policy
//! compiles instead of never matching.
//!
//! | pattern | matches | does not match |
//! | --- | --- | --- |
//! | path exact `/api/v1` | `/api/v1` | `/api/v1/`, `/api/v1x` |
//! | path prefix `/api` | `/api`, `/api/`, `/api/x/y` | `/apix`, `/ap` |
//! | path prefix `/api/` | `/api/`, `/api/x` | `/api` |
//! | path glob `/api/*/items` | `/api/7/items` | `/api/7/8/items` (`*` stays in a segment) |
//! | path glob `/static/**` | `/static`, `/static/a/b.css` (`**` as the last segment: any rest) | `/staticx` |
//! | methods {GET, HEAD} | `GET`, `HEAD` | `get`, `POST` (case-sensitive, RFC 9110 9.1) |
//! | host `api.example.com` | `api.example.com` on any port | `x.api.example.com` |
//! | host `api.example.com:8080` | `api.example.com:8080` | `api.example.com` (port 80) |
//! | host `*.example.com` | `a.example.com`, `a.b.example.com` | `example.com`, `badexample.com` |
//! | DNS `*.example.com` | `a.example.com`, `A.B.Example.COM` | `example.com` |

use crate::http::{normalize_path, Host, Method, HEAD_MAX};

/// A path rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathPattern<'a> {
    /// The whole path, byte for byte.
    Exact(&'a [u8]),
    /// A leading run of whole segments (see [`path_prefix`]).
    Prefix(&'a [u8]),
    /// `*` within a segment, `**` as the last segment (see [`glob`]).
    Glob(&'a [u8]),
}

/// Why a pattern is refused at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternError {
    /// A path pattern that [`normalize_path`] would change (or refuses).
    NotNormalised,
    /// `**` anywhere but as the whole last segment.
    MisplacedDoubleStar,
    /// A name pattern that is empty, not lowercase, or has a `*` other
    /// than a leading `*.`.
    BadName,
}

impl<'a> PathPattern<'a> {
    /// Checks the pattern is in normal form (so it can match a normalised
    /// path at all). Globs are checked with their `*`s as they are.
    pub fn new(p: PathPattern<'a>) -> Result<PathPattern<'a>, PatternError> {
        let raw = match p {
            PathPattern::Exact(r) | PathPattern::Prefix(r) | PathPattern::Glob(r) => r,
        };
        let mut out = [0u8; HEAD_MAX];
        match normalize_path(raw, &mut out) {
            Ok(n) if n == raw => {}
            _ => return Err(PatternError::NotNormalised),
        }
        if let PathPattern::Glob(g) = p {
            let mut segs = g.split(|&b| b == b'/').peekable();
            while let Some(s) = segs.next() {
                let last = segs.peek().is_none();
                if s.windows(2).any(|w| w == b"**") && (!last || s != b"**") {
                    return Err(PatternError::MisplacedDoubleStar);
                }
            }
        }
        Ok(p)
    }

    /// Whether the normalised `path` matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        match *self {
            PathPattern::Exact(p) => p == path,
            PathPattern::Prefix(p) => path_prefix(p, path),
            PathPattern::Glob(p) => glob(p, path),
        }
    }
}

/// `prefix` is a leading run of whole segments of `path`: `/api` matches
/// `/api` and `/api/...`, not `/apix`; a prefix ending in `/` matches the
/// paths that start with it; `/` matches every path.
pub fn path_prefix(prefix: &[u8], path: &[u8]) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.last() == Some(&b'/') || path.len() == prefix.len() || path[prefix.len()] == b'/'
}

/// Path glob: segments are compared one by one; in a segment `*` matches
/// any run of bytes (not `/`); a last pattern segment `**` matches any
/// number of remaining segments, none included (`/static/**` matches
/// `/static`). Linear in `path` times the stars of one segment.
pub fn glob(pattern: &[u8], path: &[u8]) -> bool {
    let mut pats = pattern.split(|&b| b == b'/').peekable();
    let mut segs = path.split(|&b| b == b'/');
    loop {
        match (pats.next(), segs.next()) {
            (Some(b"**"), _) if pats.peek().is_none() => return true,
            (Some(p), Some(s)) => {
                if !segment_glob(p, s) {
                    return false;
                }
            }
            (None, None) => return true,
            // `/static/**` also matches `/static`: the path ran out
            // exactly before a final `**`.
            (Some(b"**"), None) => return pats.peek().is_none(),
            _ => return false,
        }
    }
}

/// Wildcard match of one segment: `*` is any run of bytes. The classic
/// greedy algorithm with one backtrack point (correct for a single
/// wildcard kind), O(len(p) * len(s)) at worst.
fn segment_glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// A set of methods, matched case-sensitively: a bit per known method,
/// and `any`. A method token that is not a known method's exact spelling
/// (`get`, `FOO`) is only in [`MethodSet::ANY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MethodSet(u16);

impl MethodSet {
    pub const EMPTY: MethodSet = MethodSet(0);
    pub const ANY: MethodSet = MethodSet(u16::MAX);

    pub const fn with(self, m: Method) -> MethodSet {
        MethodSet(self.0 | 1 << m as u16)
    }

    pub fn contains(&self, method: &[u8]) -> bool {
        if *self == MethodSet::ANY {
            return true;
        }
        match Method::from_bytes(method) {
            Some(m) => self.0 & (1 << m as u16) != 0,
            None => false,
        }
    }
}

/// A name pattern: exact, or `*.suffix` (one or more labels before the
/// suffix). Lowercase, no trailing dot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NamePattern<'a> {
    /// The name, or the suffix without its `*.`.
    name: &'a [u8],
    wildcard: bool,
}

impl<'a> NamePattern<'a> {
    /// `example.com` or `*.example.com`; refused unless lowercase, with
    /// at most one leading `*.`.
    pub fn new(p: &'a [u8]) -> Result<NamePattern<'a>, PatternError> {
        let (wildcard, name) = match p.strip_prefix(b"*.") {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        if name.is_empty()
            || name.last() == Some(&b'.')
            || name.first() == Some(&b'.')
            || !name
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        {
            return Err(PatternError::BadName);
        }
        Ok(NamePattern { name, wildcard })
    }

    /// Whether `name` matches, ASCII case-insensitively (one trailing dot
    /// on `name` is ignored).
    pub fn matches(&self, name: &[u8]) -> bool {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if !self.wildcard {
            return name.eq_ignore_ascii_case(self.name);
        }
        name.len() > self.name.len() + 1 && {
            let cut = name.len() - self.name.len();
            name[cut - 1] == b'.' && name[cut..].eq_ignore_ascii_case(self.name) && cut - 1 > 0
        }
    }
}

/// An HTTP host rule: a name pattern, and a port or any port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPattern<'a> {
    pub name: NamePattern<'a>,
    /// `None`: any port. `Some(p)`: exactly `p`, where a host without a
    /// port is on `default_port`.
    pub port: Option<u16>,
}

impl HostPattern<'_> {
    /// Whether a normalised host matches; `default_port` is the port a
    /// host without one is on (80 for plain HTTP).
    pub fn matches(&self, host: &Host<'_>, default_port: u16) -> bool {
        self.name.matches(host.name)
            && match self.port {
                None => true,
                Some(p) => host.port.unwrap_or(default_port) == p,
            }
    }
}

/// DNS (and TLS server) name match: `pattern` is `name` or `*.suffix`,
/// compared ASCII case-insensitively. An invalid pattern matches nothing.
pub fn name_matches(pattern: &[u8], name: &[u8]) -> bool {
    let lower;
    let mut buf = [0u8; 256];
    let p = match crate::lower_into(pattern, &mut buf) {
        Some(l) => {
            lower = l;
            lower
        }
        None => return false,
    };
    NamePattern::new(p).is_ok_and(|np| np.matches(name))
}

#[cfg(test)]
mod tests;
