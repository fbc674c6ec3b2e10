//! Running the bunker binary in the background to signal it: its stderr lines
//! arrive as they are printed, so a test waits for a progress line (never for a
//! time) before it sends Ctrl-C or SIGTERM, and checks afterwards that no
//! process bunker started is left.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A bunker process started in the background.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout: JoinHandle<String>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
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
            child,
            lines,
            stderr,
            stdout,
        }
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

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the pid of our own child; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid})");
    }

    /// Waits for the end; (exit code, stdout, stderr).
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let status = self.child.wait().expect("wait for bunker");
        let stdout = self.stdout.join().expect("stdout thread");
        // The stderr thread ends at EOF; drain the channel to wait for it.
        while self.lines.recv().is_ok() {}
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code(), stdout, stderr)
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
