//! The crate's only `unsafe`: sending a signal to a process.
#![allow(unsafe_code)]

/// Signals that teardown sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends `sig` to process `pid`. Errors carry errno (ESRCH: no such process).
pub fn kill(pid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    let sig = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is positive, so it names one process, never a group or "all".
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `sig` to every process in process group `pgid` (a group that the
/// lab created for one check, so its leader's PID is the group id).
pub fn kill_group(pgid: u32, sig: Signal) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    let sig = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) with a negative pid signals one process group; `pgid`
    // is greater than 1, so the call never means "every process" (-1).
    let rc = unsafe { libc::kill(-pgid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_positive_pids() {
        assert!(kill(0, Signal::Term).is_err());
        assert!(kill(u32::MAX, Signal::Term).is_err());
        assert!(kill_group(0, Signal::Term).is_err());
        assert!(kill_group(1, Signal::Term).is_err());
    }

    #[test]
    fn kills_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill(child.id(), Signal::Kill).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn kills_a_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        kill_group(child.id(), Signal::Kill).unwrap();
        assert!(!child.wait().unwrap().success());
    }
}
