//! Progress lines and the final pass/fail report of a lab run.

use std::fmt::Write as _;
use std::time::Duration;

use crate::checks::Outcome;

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub description: String,
    pub outcome: Outcome,
}

/// All results of a run, in check order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub lab: String,
    pub results: Vec<CheckResult>,
}

/// `[2/6] tcp a1 -> b1 ... ` (printed before the check runs).
pub fn progress_prefix(index: usize, total: usize, description: &str) -> String {
    format!("[{}/{total}] {description} ... ", index + 1)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `ok (1.8 s, 45 Mbit/s)` or `FAILED (2.0 s)` plus indented details.
pub fn outcome_text(outcome: &Outcome) -> String {
    if outcome.passed {
        if outcome.summary.is_empty() {
            format!("ok ({})", secs(outcome.elapsed))
        } else {
            format!("ok ({}, {})", secs(outcome.elapsed), outcome.summary)
        }
    } else {
        let mut s = format!("FAILED ({})", secs(outcome.elapsed));
        for line in outcome.detail.lines() {
            s.push_str("\n      ");
            s.push_str(line);
        }
        s
    }
}

impl Report {
    /// Number of passed checks.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.passed).count()
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    /// The closing summary: failed checks again, then `N passed, M failed`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lab {}: {}",
            self.lab,
            if self.ok() { "PASS" } else { "FAIL" }
        );
        for (i, r) in self.results.iter().enumerate() {
            if !r.outcome.passed {
                let _ = writeln!(
                    s,
                    "  failed [{}/{}] {}",
                    i + 1,
                    self.results.len(),
                    r.description
                );
            }
        }
        let _ = write!(s, "{} passed, {} failed", self.passed(), self.failed());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(passed: bool, summary: &str, detail: &str) -> Outcome {
        Outcome {
            passed,
            elapsed: Duration::from_millis(1800),
            summary: summary.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn formats_progress_and_outcomes() {
        assert_eq!(
            progress_prefix(1, 6, "tcp a1 -> b1"),
            "[2/6] tcp a1 -> b1 ... "
        );
        assert_eq!(
            outcome_text(&outcome(true, "45 Mbit/s", "")),
            "ok (1.8 s, 45 Mbit/s)"
        );
        assert_eq!(
            outcome_text(&outcome(true, "3/3 replies", "")),
            "ok (1.8 s, 3/3 replies)"
        );
        assert_eq!(outcome_text(&outcome(true, "", "")), "ok (1.8 s)");
        assert_eq!(
            outcome_text(&outcome(false, "", "first\nsecond")),
            "FAILED (1.8 s)\n      first\n      second"
        );
    }

    #[test]
    fn summary_counts_and_lists_failures() {
        let report = Report {
            lab: "demo".into(),
            results: vec![
                CheckResult {
                    description: "ping a".into(),
                    outcome: outcome(true, "", ""),
                },
                CheckResult {
                    description: "tcp b".into(),
                    outcome: outcome(false, "", "boom"),
                },
            ],
        };
        assert!(!report.ok());
        let s = report.summary();
        assert!(s.starts_with("lab demo: FAIL"), "{s}");
        assert!(s.contains("failed [2/2] tcp b"), "{s}");
        assert!(s.ends_with("1 passed, 1 failed"), "{s}");
    }
}
