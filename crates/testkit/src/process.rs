//! A service under test as a child process: started with its config naming
//! `127.0.0.1:0`, its address read from the `listening on http://ADDR` line
//! it prints on stdout (no port is guessed, so none is raced for), its log
//! kept, and stopped on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// How long a service may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a dropped service has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long [`Service::wait_exit`] waits.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// How often an exit is looked for.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// Where a service's stderr (its log) goes.
#[derive(Debug, Clone)]
pub enum Log {
    /// Kept in memory, one entry per line, for [`Service::wait_for_log`],
    /// and echoed on the test's stderr.
    Capture,
    /// Written to this file (created or truncated).
    File(PathBuf),
}

/// Why a service did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The log file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    LogFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The program could not be started (not found, not executable).
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// No `listening on http://ADDR` line in time, or stdout closed first
    /// (the program exited); the program is killed.
    #[error("`{command}` printed no `listening on http://ADDR` line within {} s", waited.as_secs())]
    NotListening {
        /// The command line.
        command: String,
        /// How long it was given.
        waited: Duration,
    },
    /// The listening line names something that is not `IP:PORT`; the
    /// program is killed.
    #[error("`{command}`: `{addr}` is not an address")]
    BadAddress {
        /// The command line.
        command: String,
        /// What the line said.
        addr: String,
    },
}

/// A running service; SIGTERM, then SIGKILL after 2 s, on drop.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// Where it listens, as its listening line said.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts `command` (stdout and stderr are taken over) and waits (at most
    /// [`START_TIMEOUT`]) for its `listening on http://ADDR` line.
    pub fn start(mut command: Command, log: Log) -> Result<Service, StartError> {
        let line = command_line(&command);
        let stderr = match &log {
            Log::Capture => Stdio::piped(),
            Log::File(path) => std::fs::File::create(path)
                .map(Stdio::from)
                .map_err(|source| StartError::LogFile {
                    path: path.clone(),
                    source,
                })?,
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| StartError::Spawn {
                command: line.clone(),
                source,
            })?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    lock(&sink).push(line);
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let sink = stdout.clone();
            // Read to the end: a child must never block on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(addr) = listening_addr(&line) {
                        let _ = tx.send(addr.to_owned());
                    }
                    lock(&sink).push(line);
                }
            });
        }
        let mut service = Service {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: lines,
            stdout,
        };
        let Ok(addr) = rx.recv_timeout(START_TIMEOUT) else {
            return Err(StartError::NotListening {
                command: line,
                waited: START_TIMEOUT,
            });
        };
        service.addr = addr.parse().map_err(|_| StartError::BadAddress {
            command: line,
            addr,
        })?;
        Ok(service)
    }

    /// The address of its `admin routes on http://ADDR` line (a service
    /// with `admin_listen`), waiting at most `limit` for it.
    pub fn admin_addr(&self, limit: Duration) -> Option<SocketAddr> {
        let mut found = None;
        crate::eventually(limit, || {
            found = lock(&self.stdout).iter().find_map(|l| {
                l.split("admin routes on ")
                    .nth(1)
                    .and_then(|rest| {
                        rest.strip_prefix("http://")
                            .or_else(|| rest.strip_prefix("https://"))
                    })
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
            });
            found.is_some()
        });
        found
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// How many log lines so far ([`Log::Capture`]; always 0 otherwise).
    pub fn log_len(&self) -> usize {
        lock(&self.log).len()
    }

    /// Log line `i` (from 0), if there is one yet.
    pub fn log_line(&self, i: usize) -> Option<String> {
        lock(&self.log).get(i).cloned()
    }

    /// Waits (at most `limit`) for a log line containing `needle` after the
    /// first `skip` lines; returns its index.
    pub fn wait_for_log(&self, needle: &str, skip: usize, limit: Duration) -> Option<usize> {
        let mut found = None;
        crate::eventually(limit, || {
            found = lock(&self.log)
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, l)| l.contains(needle))
                .map(|(i, _)| i);
            found.is_some()
        });
        found
    }

    /// Sends `sig`.
    ///
    /// # Panics
    ///
    /// Never in practice: the child is reaped only by [`Service::wait_exit`]
    /// or on drop, so its pid is still ours.
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("the unreaped child's pid is ours");
    }

    /// Waits (at most 20 s) for the process to exit; returns its status.
    ///
    /// # Panics
    ///
    /// If it does not exit in time: the test fails there.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_for_exit(&mut self.child, EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("process {} did not exit", self.child.id()))
    }

    fn pid(&self) -> nix::unistd::Pid {
        // Child ids are positive and below pid_max (at most 2^22).
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = nix::sys::signal::kill(self.pid(), Signal::SIGTERM);
            if wait_for_exit(&mut self.child, STOP_GRACE).is_some() {
                return;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most `limit`) for `child` to exit; its status, or `None` if it
/// still runs (or cannot be waited for).
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
            _ => return None,
        }
    }
}

/// The address in a `… listening on http://ADDR …` (or `https://`) line.
pub fn listening_addr(line: &str) -> Option<&str> {
    let rest = line.split("listening on ").nth(1)?;
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))?;
    rest.split_whitespace().next()
}

/// `program arg …`, for messages.
fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The log, also after a panic in a test thread that held it.
fn lock(log: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_are_read() {
        assert_eq!(
            listening_addr("keyshift issuer listening on http://127.0.0.1:4000 (phase dual)"),
            Some("127.0.0.1:4000")
        );
        assert_eq!(listening_addr("starting"), None);
    }

    #[test]
    fn a_program_that_never_listens_is_an_error_naming_it() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo starting"]);
        // stdout closes at once: no need to wait out the start timeout.
        let started = Instant::now();
        let err = Service::start(cmd, Log::Capture).expect_err("never listens");
        assert!(
            err.to_string().contains("`sh -c echo starting` printed no"),
            "{err}"
        );
        assert!(started.elapsed() < START_TIMEOUT);
    }

    #[test]
    fn the_address_and_the_log_come_from_the_child() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'x listening on http://127.0.0.1:4321 (test)'; echo ready >&2; exec sleep 30",
        ]);
        let mut service = Service::start(cmd, Log::Capture).expect("starts");
        assert_eq!(service.addr, "127.0.0.1:4321".parse().expect("addr"));
        let line = service
            .wait_for_log("ready", 0, Duration::from_secs(10))
            .expect("logged");
        assert_eq!(service.log_line(line).as_deref(), Some("ready"));
        service.signal(Signal::SIGTERM);
        assert!(!service.wait_exit().success(), "killed by SIGTERM");
    }
}
