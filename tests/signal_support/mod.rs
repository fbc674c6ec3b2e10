//! The one harness for tests that signal or kill a running bunker: it runs the binary in
//! the background with its stdout collected and its stderr lines arriving as they are
//! printed, so a test waits for a progress line or a condition (never for a time) before
//! it sends Ctrl-C, SIGTERM or SIGKILL, and checks afterwards that no process bunker
//! started is left.
#![allow(dead_code)] // Each test crate uses a different subset of the harness.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::{Output, describe};

/// How often [`Running::wait_until`] looks at its condition again.
const POLL: Duration = Duration::from_millis(5);
/// How often [`Running::kill_when`] does: a kill point is a narrow window.
const KILL_POLL: Duration = Duration::from_millis(2);

/// A bunker process started in the background.
pub struct Running {
    /// The command line, for failure messages.
    command: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout: JoinHandle<String>,
}

/// How a background run ended, with everything it printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    /// Starts `command` (a `BunkerCommand` or a plain `Command`) with piped output.
    pub fn start(command: impl Into<Command>) -> Running {
        let mut command = command.into();
        let description = describe(&command);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bunker");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).expect("read stdout");
            text
        });
        let err = child.stderr.take().expect("stderr");
        let (sender, lines) = channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let line = line.expect("read stderr");
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = sender.send(line);
            }
        });
        Running {
            command: description,
            child,
            lines,
            stderr,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line that `wanted` accepts; panics with the output so
    /// far when bunker ends first.
    pub fn wait_for_line(&self, what: &str, wanted: impl Fn(&str) -> bool) {
        while let Ok(line) = self.lines.recv() {
            if wanted(&line) {
                return;
            }
        }
        panic!(
            "bunker ended before {what}:\n{}",
            self.stderr.lock().unwrap()
        );
    }

    /// Polls `condition` (given bunker's pid) every few milliseconds until it holds;
    /// panics naming `what` when bunker ends first. No time limit: a condition that
    /// never comes ends with the process.
    pub fn wait_until(&mut self, what: &str, condition: impl FnMut(u32) -> bool) {
        self.wait_until_every(POLL, what, condition);
    }

    /// The same, looking every `interval` (longer for a costly condition that runs
    /// a command, shorter for a narrow window).
    pub fn wait_until_every(
        &mut self,
        interval: Duration,
        what: &str,
        mut condition: impl FnMut(u32) -> bool,
    ) {
        while !condition(self.pid()) {
            self.assert_running(what);
            std::thread::sleep(interval);
        }
    }

    /// Panics naming `what` when bunker has already ended.
    pub fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("poll bunker") {
            panic!(
                "bunker ended ({status}) before {what}:\n{}",
                self.stderr.lock().unwrap()
            );
        }
    }

    /// True once bunker has ended (it is reaped then).
    pub fn has_ended(&mut self) -> bool {
        self.child.try_wait().expect("poll bunker").is_some()
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: kill(2) on the pid of our own child; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Sends `signal` (SIGINT or SIGTERM) and waits for the end, checking what every
    /// interrupted bunker does: exit status 128 + signal and its stop line
    /// (`Ctrl-C: bunker is stopping`, `SIGTERM: bunker is stopping`). (stdout, stderr).
    pub fn interrupt(self, signal: libc::c_int) -> (String, String) {
        let output = self.interrupted(signal);
        (output.stdout, output.stderr)
    }

    /// [`Running::interrupt`], returning what bunker printed as an [`Output`] for its
    /// `assert_stderr_contains`/`assert_stdout_contains` checks.
    #[track_caller]
    pub fn interrupted(self, signal: libc::c_int) -> Output {
        let stop_line = match signal {
            libc::SIGINT => "Ctrl-C: bunker is stopping",
            libc::SIGTERM => "SIGTERM: bunker is stopping",
            other => panic!("signal {other} is not an interrupt bunker handles"),
        };
        self.signal(signal);
        let output = self.output();
        assert_eq!(
            output.code,
            Some(128 + signal),
            "exit status after signal {signal}:\n{output}"
        );
        output.assert_stderr_contains(stop_line);
        output
    }

    /// Waits for the end; how bunker ended and what it printed, as an [`Output`].
    pub fn output(mut self) -> Output {
        let command = std::mem::take(&mut self.command);
        let (code, stdout, stderr) = self.finish();
        Output {
            code,
            stdout,
            stderr,
            command,
        }
    }

    /// Waits for the end; (exit code, stdout, stderr).
    pub fn finish(self) -> (Option<i32>, String, String) {
        let finished = self.finished();
        (finished.status.code(), finished.stdout, finished.stderr)
    }

    /// Waits for the end, keeping the whole exit status (a signal that ended it).
    pub fn finished(mut self) -> Finished {
        let status = self.child.wait().expect("wait for bunker");
        let stdout = self.stdout.join().expect("stdout thread");
        // The stderr thread ends at EOF; drain the channel to wait for it.
        while self.lines.recv().is_ok() {}
        let stderr = self.stderr.lock().unwrap().clone();
        Finished {
            status,
            stdout,
            stderr,
        }
    }

    /// Waits until `condition` (given bunker's pid) holds or bunker ends by itself, then
    /// SIGKILLs and reaps it. True when the kill landed on a running bunker, false when
    /// it had finished first.
    pub fn kill_when(mut self, mut condition: impl FnMut(u32) -> bool) -> bool {
        while !self.has_ended() && !condition(self.pid()) {
            std::thread::sleep(KILL_POLL);
        }
        self.kill() == Some(libc::SIGKILL)
    }

    /// SIGKILLs bunker (unless it has ended already) and reaps it; the signal that
    /// ended it (None: it had exited by itself).
    pub fn kill(mut self) -> Option<i32> {
        self.child.kill().expect("SIGKILL bunker");
        self.finished().status.signal()
    }
}

/// Command lines of the processes on this machine that mention `needle`
/// (other than this test process).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let own = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|byte| byte.is_ascii_digit()) || name == own {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let command_line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if command_line.contains(needle) {
            found.push(format!("{name}: {}", command_line.trim_end()));
        }
    }
    found
}
