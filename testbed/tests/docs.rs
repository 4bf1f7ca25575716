//! Every ```toml block of README.md and docs/*.md passes `warden check`,
//! except blocks marked ```toml fragment (parts of a file). The lab files
//! among them are checked, stats paths included; they are not brought up
//! here (the same topologies run as testbed/examples in the lab tests).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::warden_bin;

/// (file, line of the fence, info string, body) of each fenced block whose
/// info string starts with `toml`.
fn toml_blocks(path: &Path) -> Vec<(usize, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        if info.split_whitespace().next() == Some("toml") {
            out.push((i + 1, info.to_string(), body));
        }
    }
    out
}

#[test]
fn every_toml_example_in_the_docs_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files.push(root.join("README.md"));
    let dir = std::env::temp_dir().join(format!("warden-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut checked, mut skipped, mut failures) = (0, 0, Vec::new());
    for f in &files {
        for (line, info, body) in toml_blocks(f) {
            if info.split_whitespace().any(|w| w == "fragment") {
                skipped += 1;
                continue;
            }
            let name = format!("{}-{line}.toml", f.file_name().unwrap().to_string_lossy());
            let tmp = dir.join(&name);
            std::fs::write(&tmp, &body).unwrap();
            let out = Command::new(warden_bin())
                .arg("check")
                .arg(&tmp)
                .output()
                .unwrap();
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{}:{line}: ```{info} block fails `warden check` (mark a part of a file ```toml fragment): {}",
                    f.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 3,
        "only {checked} blocks checked ({skipped} fragments)"
    );
    eprintln!("{checked} toml blocks checked, {skipped} fragments skipped");
}
