//! The deployment's processes: spawned with their configuration, logging to a file per start,
//! waited for until ready, killed on drop.

use crate::{io, TestbedError, START_TIMEOUT};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running process of the deployment, killed on drop.
pub(crate) struct Process {
    pub name: String,
    pub config: std::path::PathBuf,
    pub child: Option<Child>,
    pub starts: usize,
}

impl Process {
    pub fn signal(&self, signal: libc::c_int) -> bool {
        match &self.child {
            // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped
            Some(child) => unsafe { libc::kill(child.id() as libc::pid_t, signal) == 0 },
            None => false,
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The log of a process's `starts`-th start: `NAME.log`, then `NAME.2.log`, ...
pub(crate) fn log_name(name: &str, starts: usize) -> String {
    match starts {
        0 | 1 => format!("{name}.log"),
        k => format!("{name}.{k}.log"),
    }
}

pub(crate) fn spawn(binary: &Path, work: &Path, process: &mut Process) -> Result<(), TestbedError> {
    process.stop();
    process.starts += 1;
    let log = work.join(log_name(&process.name, process.starts));
    let file = std::fs::File::create(&log).map_err(io(&log))?;
    let child = Command::new(binary)
        .arg("--config")
        .arg(&process.config)
        .stderr(file)
        .spawn()
        .map_err(io(binary))?;
    process.child = Some(child);
    Ok(())
}

pub(crate) fn wait_for(
    work: &Path,
    name: &str,
    starts: usize,
    ready: impl Fn() -> bool,
) -> Result<(), TestbedError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while !ready() {
        if Instant::now() > deadline {
            return Err(TestbedError::NotUp {
                what: name.to_owned(),
                seconds: START_TIMEOUT.as_secs(),
                log: work.join(log_name(name, starts)),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
