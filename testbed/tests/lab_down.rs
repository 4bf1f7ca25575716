//! `warden-lab down FILE` removes only the runs of FILE whose owner (the
//! warden-lab process that brought them up) is gone; a run whose owner
//! still runs (a concurrent test, a `run` in progress) stays until named by
//! `--prefix`. Each run here is a one-namespace lab with its own prefix.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{is_root, lab_up, Cleanup};
use testbed::{netns, state};

const LAB_BIN: &str = env!("CARGO_BIN_EXE_warden-lab");

fn lab_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        "[lab]\nname = \"tiny\"\ndescription = \"one namespace\"\n\n[[host]]\nname = \"h1\"\n",
    )
    .unwrap();
    path
}

fn down(args: &[&str]) -> (bool, String) {
    let out = Command::new(LAB_BIN)
        .arg("down")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn down_file_spares_runs_whose_owner_lives() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let tag = std::process::id() & 0xfffff;
    let dir = std::env::temp_dir().join(format!("wd-down-{tag:05x}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = lab_file(&dir);
    let [p1, p2, p3] = ["a", "b", "c"].map(|t| format!("wd{t}{tag:05x}"));
    let _guards = [&p1, &p2, &p3].map(|p| Cleanup(p.clone()));
    // Two runs whose owners live: stand-ins for two concurrent warden-lab
    // processes (`down --prefix` stops a live owner, as it must stop a
    // `run` in progress, so the owner is not this test process).
    let owner = |st: &mut state::RunState| {
        let child = Command::new("sleep").arg("120").spawn().unwrap();
        st.owner = testbed::process::Pid::current(child.id());
        st.save().unwrap();
        common::Proc {
            child: Some(child),
            what: "owner".into(),
        }
    };
    let mut s1 = lab_up(&file, &p1).detach();
    let _o1 = owner(&mut s1);
    let mut s2 = lab_up(&file, &p2).detach();
    let _o2 = owner(&mut s2);
    // A third whose owner is gone: a process that has exited.
    let mut s3 = lab_up(&file, &p3).detach();
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    s3.owner = Some(testbed::process::Pid {
        pid: gone_pid,
        start_time: 1,
    });
    s3.save().unwrap();
    let ns = |p: &str| state::ns_name(p, "h1");

    let (ok, text) = down(&[file.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("removed {p3}")), "{text}");
    for p in [&p1, &p2] {
        assert!(
            text.contains(&format!("left {p} running")) && text.contains("still runs"),
            "{text}"
        );
        assert!(netns::netns_exists(&ns(p)), "{p} was torn down: {text}");
    }
    assert!(!netns::netns_exists(&ns(&p3)), "{text}");
    assert!(!s3.dir.exists());

    let (ok, text) = down(&["--prefix", &p1]);
    assert!(ok, "{text}");
    assert!(!netns::netns_exists(&ns(&p1)), "{text}");
    assert!(!s1.dir.exists());
    assert!(netns::netns_exists(&ns(&p2)), "--prefix {p1} removed {p2}");

    let (ok, text) = down(&["--prefix", &p2]);
    assert!(ok && !netns::netns_exists(&ns(&p2)), "{text}");
    assert!(!s2.dir.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
