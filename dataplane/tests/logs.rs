//! `warden run` logs through `tracing` to stderr: levels and the JSON
//! format, shown with a run whose uplink interface does not exist (no root
//! needed): the failure is one event, at level ERROR, naming the port and
//! the interface. (A config error is not a log event: it is printed as
//! `warden check` prints it, FILE:LINE:COLUMN: message.)

use std::process::Command;

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn bad_config(tag: &str) -> tempfile_path::Path {
    let sock = std::env::temp_dir().join(format!("warden-logs-{tag}-{}.sock", std::process::id()));
    tempfile_path::write(
        tag,
        &format!(
            "[instance]\nname = \"logs\"\ncontrol_socket = \"{}\"\n\n[underlay]\nport = \"uplink\"\n\
             address = \"10.0.0.1/24\"\n\n[[port]]\nname = \"uplink\"\nbackend = \"af_packet\"\n\
             interface = \"wdn-logs-nope0\"\n\n[[peer]]\naddress = \"10.0.0.2\"\nvnis = [100]\n\n\
             [[vni]]\nid = 100\n",
            sock.display()
        ),
    )
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
    assert!(!lines.is_empty(), "{err}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("every line a JSON object");
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
    }
    let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    let msg = last["message"].as_str().expect("a message");
    assert!(
        msg.contains("port uplink") && msg.contains("wdn-logs-nope0"),
        "{msg}"
    );
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
    assert!(
        err.contains(" ERROR ") && err.contains("wdn-logs-nope0"),
        "{err}"
    );
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
