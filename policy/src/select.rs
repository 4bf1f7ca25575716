//! Matching one selector against one document or one address.
//!
//! Globs are matched by a small backtracking matcher rather than a glob
//! crate: the language has only `*` (any run, `/` included: identity names
//! are not paths to be walked segment by segment) and `?`, matching runs at
//! compile time only, and a crate such as globset would bring character
//! classes, `**` and path-separator rules that would then need rejecting.

use identity::IdentityDoc;

use crate::model::Selector;

/// Longest glob, in bytes: a glob longer than the longest name could still
/// match (`*` matches nothing), but nothing needs one.
pub const MAX_GLOB: usize = 255;

/// `true` when `name` matches `pattern`: `*` any run of characters
/// (including none and including `/`), `?` exactly one character.
///
/// The classic two-pointer matcher: on a mismatch, back up to the last `*`
/// and let it swallow one more character. Linear in practice, at worst
/// `O(pattern × name)`, never exponential.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.is_ascii() && name.is_ascii() {
        match_slices(pattern.as_bytes(), name.as_bytes(), b'*', b'?')
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        match_slices(&p, &n, '*', '?')
    }
}

fn match_slices<T: PartialEq + Copy>(p: &[T], n: &[T], any_run: T, any_one: T) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    // (position of the last `*` in the pattern, name position it resumed at)
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(&c) if c == any_run => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == any_one || Some(&c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == any_run))
}

/// Why `pattern` cannot be a glob, or `None`. Names are 1 to 255 bytes
/// without control characters, so a glob with a control character could
/// never match, and an empty one would be a typo.
pub fn glob_problem(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        Some("the glob is empty")
    } else if pattern.len() > MAX_GLOB {
        Some("the glob is longer than 255 bytes")
    } else if pattern.chars().any(char::is_control) {
        Some("the glob contains a control character, which no identity name can")
    } else {
        None
    }
}

/// `true` when `s` would be read as a glob rather than an exact name.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Whether an identity selector matches document `doc`. `Unauthenticated`
/// and `Cidr` are not about documents and never match one.
pub fn matches_doc(sel: &Selector, doc: &IdentityDoc) -> bool {
    match sel {
        Selector::Identity(n) => doc.name == *n,
        Selector::Glob(g) => glob_match(g, &doc.name),
        Selector::Labels(want) => want.iter().all(|(k, v)| doc.labels.get(k) == Some(v)),
        Selector::Unauthenticated | Selector::Cidr(_) | Selector::Fqdn(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(glob_match(
            "spiffe://lab/ns/web/*",
            "spiffe://lab/ns/web/sa/api"
        ));
        assert!(glob_match("spiffe://lab/ns/web/*", "spiffe://lab/ns/web/"));
        assert!(!glob_match(
            "spiffe://lab/ns/web/*",
            "spiffe://lab/ns/webx/sa"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("*/sa/api", "spiffe://lab/ns/x/sa/api"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("**a", "bba"));
        assert!(glob_match("a*", "a"));
        assert!(!glob_match("a", "ab"));
        assert!(!glob_match("ab", "a"));
    }

    #[test]
    fn question_mark_is_one_character() {
        assert!(glob_match("node-?", "node-1"));
        assert!(glob_match("node-?", "node-é"));
        assert!(!glob_match("node-?", "node-"));
        assert!(!glob_match("node-?", "node-12"));
        assert!(glob_match("?*", "x"));
        assert!(!glob_match("?*", ""));
    }

    #[test]
    fn backtracking_is_not_exponential() {
        let name = "a".repeat(200);
        let pattern = format!("{}b", "*a".repeat(40));
        assert!(!glob_match(&pattern, &name));
    }

    #[test]
    fn glob_problems() {
        assert!(glob_problem("").is_some());
        assert!(glob_problem("a\n*").is_some());
        assert!(glob_problem(&"*".repeat(256)).is_some());
        assert!(glob_problem("spiffe://lab/*").is_none());
        assert!(is_glob("a*") && is_glob("a?") && !is_glob("a"));
    }
}
