use super::*;
use crate::http::{normalize_host, Method};

#[test]
fn path_patterns() {
    let p = PathPattern::new(PathPattern::Exact(b"/api/v1")).unwrap();
    assert!(p.matches(b"/api/v1"));
    assert!(!p.matches(b"/api/v1/") && !p.matches(b"/api/v1x"));
    let p = PathPattern::new(PathPattern::Prefix(b"/api")).unwrap();
    for ok in [&b"/api"[..], b"/api/", b"/api/x/y"] {
        assert!(p.matches(ok));
    }
    for no in [&b"/apix"[..], b"/ap", b"/", b"/x/api"] {
        assert!(!p.matches(no));
    }
    assert!(path_prefix(b"/api/", b"/api/x") && !path_prefix(b"/api/", b"/api"));
    assert!(path_prefix(b"/", b"/anything"));
}

#[test]
fn globs() {
    assert!(glob(b"/api/*/items", b"/api/7/items"));
    assert!(!glob(b"/api/*/items", b"/api/7/8/items"));
    assert!(!glob(b"/api/*/items", b"/api/items"));
    assert!(glob(b"/api/*", b"/api/"));
    assert!(glob(b"/img/*.png", b"/img/a.b.png"));
    assert!(!glob(b"/img/*.png", b"/img/a.png/x"));
    assert!(glob(b"/a*b*c", b"/aXXbYYbZc"));
    assert!(!glob(b"/a*b*c", b"/aXXbYY"));
    assert!(glob(b"/static/**", b"/static"));
    assert!(glob(b"/static/**", b"/static/"));
    assert!(glob(b"/static/**", b"/static/a/b.css"));
    assert!(!glob(b"/static/**", b"/staticx"));
    assert!(glob(b"/**", b"/"));
    assert!(glob(b"/x", b"/x") && !glob(b"/x", b"/x/"));
    assert_eq!(
        PathPattern::new(PathPattern::Glob(b"/a/**/b")),
        Err(PatternError::MisplacedDoubleStar)
    );
    assert_eq!(
        PathPattern::new(PathPattern::Glob(b"/a/x**")),
        Err(PatternError::MisplacedDoubleStar)
    );
    assert!(PathPattern::new(PathPattern::Glob(b"/a/**")).is_ok());
}

#[test]
fn patterns_must_be_normal() {
    for bad in [
        &b"/api/../admin"[..],
        b"/%61dmin",
        b"//admin",
        b"admin",
        b"/a/./b",
        b"/%2f",
    ] {
        assert_eq!(
            PathPattern::new(PathPattern::Prefix(bad)),
            Err(PatternError::NotNormalised)
        );
    }
    assert!(PathPattern::new(PathPattern::Prefix(b"/a%2Fb")).is_ok());
}

#[test]
fn evasions_against_a_prefix_rule() {
    // A rule allowing only /orders; each evasion normalises to /admin or
    // /orders-adjacent paths that the prefix does not cover.
    let rule = PathPattern::new(PathPattern::Prefix(b"/admin")).unwrap();
    let mut out = [0u8; 64];
    for raw in [
        &b"/%61dmin"[..],
        b"/api/../admin",
        b"//admin",
        b"/./admin/x",
        b"/%2E%2E/admin",
    ] {
        let n = normalize_path(raw, &mut out).unwrap();
        assert!(rule.matches(n), "{}", String::from_utf8_lossy(raw));
    }
    let n = normalize_path(b"/admin%2Fx", &mut out).unwrap();
    assert!(!rule.matches(n)); // /admin%2Fx is one segment, not /admin/x
}

#[test]
fn methods_are_case_sensitive() {
    let s = MethodSet::EMPTY.with(Method::Get).with(Method::Head);
    assert!(s.contains(b"GET") && s.contains(b"HEAD"));
    assert!(!s.contains(b"get") && !s.contains(b"POST") && !s.contains(b"FOO"));
    assert!(MethodSet::ANY.contains(b"get"));
    assert!(!MethodSet::EMPTY.contains(b"GET"));
}

#[test]
fn hosts() {
    let mut b = [0u8; 256];
    let exact = HostPattern {
        name: NamePattern::new(b"api.example.com").unwrap(),
        port: None,
    };
    let h = normalize_host(b"API.example.com:8080", 80, &mut b).unwrap();
    assert!(exact.matches(&h, 80));
    let on80 = HostPattern {
        name: NamePattern::new(b"api.example.com").unwrap(),
        port: Some(80),
    };
    assert!(!on80.matches(&h, 80));
    let mut b2 = [0u8; 256];
    let h80 = normalize_host(b"api.example.com:80", 80, &mut b2).unwrap();
    assert!(on80.matches(&h80, 80));
    let on8080 = HostPattern {
        name: NamePattern::new(b"api.example.com").unwrap(),
        port: Some(8080),
    };
    assert!(on8080.matches(&h, 80) && !on8080.matches(&h80, 80));
    let wild = HostPattern {
        name: NamePattern::new(b"*.example.com").unwrap(),
        port: None,
    };
    assert!(wild.matches(&h, 80));
    let mut b3 = [0u8; 256];
    assert!(!wild.matches(&normalize_host(b"example.com", 80, &mut b3).unwrap(), 80));
}

#[test]
fn names() {
    assert!(name_matches(b"*.example.com", b"a.example.com"));
    assert!(name_matches(b"*.example.com", b"A.B.Example.COM"));
    assert!(name_matches(b"*.example.com", b"a.example.com."));
    assert!(!name_matches(b"*.example.com", b"example.com"));
    assert!(!name_matches(b"*.example.com", b"badexample.com"));
    assert!(!name_matches(b"*.example.com", b".example.com"));
    assert!(name_matches(b"Example.com", b"EXAMPLE.COM"));
    assert!(!name_matches(b"example.com", b"www.example.com"));
    for bad in [
        &b""[..],
        b"*.",
        b"a.*.b",
        b"*",
        b"ex ample.com",
        b"example.com.",
    ] {
        assert!(
            NamePattern::new(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(!name_matches(bad, b"example.com"));
    }
    assert!(NamePattern::new(b"Example.com").is_err()); // patterns are lowercase
}
