//! Holding a process stopped while a phase loads, so that the phase measures the platform
//! without it on the same cores.
//!
//! On a two-core machine the recommender drains the topic while billing ingests, and both share
//! the cores and PostgreSQL with each other. Holding the recommender (`SIGSTOP`) during the load
//! of the ingest phases shows what billing takes alone; it is resumed (`SIGCONT`) before the wait
//! for recommendations, so it catches up and the no-loss check covers the held phases as well.
//! The signals are sent with the system's `kill`, to keep this crate free of `unsafe`.

use std::process::Command;

/// Why a process could not be held or resumed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// `kill` could not be run.
    #[error("cannot run kill: {0}")]
    Spawn(#[from] std::io::Error),
    /// `kill` refused: no such process, or not ours.
    #[error("kill -{signal} {pid} failed: {stderr}")]
    Refused {
        /// The signal's name.
        signal: &'static str,
        /// The process.
        pid: u32,
        /// What `kill` said.
        stderr: String,
    },
}

/// A stopped process, resumed by [`Held::resume`] or, failing that, when dropped.
#[derive(Debug)]
pub struct Held {
    pid: u32,
    resumed: bool,
}

impl Held {
    /// Stops `pid`.
    pub fn stop(pid: u32) -> Result<Self, HoldError> {
        signal("STOP", pid)?;
        Ok(Self {
            pid,
            resumed: false,
        })
    }

    /// Lets the process run again.
    pub fn resume(mut self) -> Result<(), HoldError> {
        self.resumed = true;
        signal("CONT", self.pid)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A phase that failed must not leave the process stopped.
        if !self.resumed {
            let _ = signal("CONT", self.pid);
        }
    }
}

fn signal(signal: &'static str, pid: u32) -> Result<(), HoldError> {
    let output = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(HoldError::Refused {
        signal,
        pid,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The state letter of `pid` in /proc (`T` when stopped).
    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after_name = stat.rsplit_once(") ").expect("stat has a name").1;
        after_name.chars().next().expect("state letter")
    }

    #[test]
    fn a_held_process_is_stopped_until_resumed() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id();

        let held = Held::stop(pid).expect("stop");
        std::thread::sleep(Duration::from_millis(100));
        let while_held = state(pid);
        held.resume().expect("resume");
        std::thread::sleep(Duration::from_millis(100));
        let after = state(pid);
        child.kill().expect("kill");
        let _ = child.wait();

        assert_eq!(while_held, 'T');
        assert_ne!(after, 'T');
    }

    #[test]
    fn dropping_a_hold_resumes_the_process() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id();

        drop(Held::stop(pid).expect("stop"));
        std::thread::sleep(Duration::from_millis(100));
        let after = state(pid);
        child.kill().expect("kill");
        let _ = child.wait();

        assert_ne!(after, 'T');
    }

    #[test]
    fn holding_a_process_that_does_not_exist_says_so() {
        let err = Held::stop(u32::MAX / 2).expect_err("no such process");

        assert!(matches!(err, HoldError::Refused { .. }), "{err}");
    }
}
