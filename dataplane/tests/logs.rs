//! `warden run` logs through `tracing` to stderr: levels and the JSON
//! format, shown with a run that fails at its config (no root, no
//! interfaces needed): the error is one event, at level ERROR, naming the
//! file, line and column.

use std::process::Command;

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn bad_config(tag: &str) -> tempfile_path::Path {
    tempfile_path::write(tag, "[instance]\nname = \"gw\"\nbogus = 1\n")
}

mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(tag: &str, text: &str) -> Path {
        let p = std::env::temp_dir().join(format!("warden-logs-{tag}-{}.toml", std::process::id()));
        std::fs::write(&p, text).expect("write the config");
        Path(p)
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_level_and_message() {
    let cfg = bad_config("json");
    let out = warden()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&cfg.0)
        .output()
        .expect("run warden");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one event: {err}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert_eq!(v["level"], "ERROR", "{v}");
    let msg = v["message"].as_str().expect("a message");
    let at = format!("{}:3:1", cfg.0.display());
    assert!(msg.contains(&at), "the error names {at}: {msg}");
    assert!(v["timestamp"].is_string());
}

#[test]
fn the_text_format_and_level_filter() {
    let cfg = bad_config("text");
    let text = warden()
        .args(["run", "-c"])
        .arg(&cfg.0)
        .output()
        .expect("run warden");
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(err.contains(" ERROR ") && err.contains(":3:1"), "{err}");
    // Errors pass any filter but `off`.
    let off = warden()
        .args(["run", "--log-level", "off", "-c"])
        .arg(&cfg.0)
        .output()
        .expect("run warden");
    assert!(!off.status.success());
    assert!(
        off.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    let bad = warden()
        .args(["run", "--log-level", "loud=!", "-c"])
        .arg(&cfg.0)
        .output()
        .expect("run warden");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("--log-level"),
        "{err}"
    );
}
