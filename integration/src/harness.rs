//! Running the real koordinator binary in tests: as PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`, needs root) or as a plain
//! child, with its output read line by line under a deadline.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The binary under test: `$KOORDINATOR_BIN`, else the static release build.
pub fn koordinator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KOORDINATOR_BIN") {
        return PathBuf::from(p);
    }
    let static_build =
        workspace_root().join("target/x86_64-unknown-linux-musl/release/koordinator");
    assert!(
        static_build.is_file(),
        "{} is missing: build it with `make static`, or set KOORDINATOR_BIN",
        static_build.display()
    );
    static_build
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes, unlike `Instant`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into ts.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A kB field of /proc/PID/status (`VmHWM`, `RssAnon`), or 0.
pub fn status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The signals of a signal storm: standard ones (which coalesce) and a
/// real-time one (which queues). The storm's target counts each of them.
pub fn storm_signals() -> [i32; 7] {
    [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGWINCH,
        libc::SIGRTMIN() + 3,
        libc::SIGCONT,
        libc::SIGALRM,
    ]
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that need root call this first. Under CI (which runs as root) a
/// missing root is a failure; on a developer machine the test says it skipped.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root, and CI runs as root"
    );
    eprintln!("SKIPPED {test}: needs root (PID namespaces); run as root or in CI");
    false
}

/// A running koordinator with its output streams read in the background.
pub struct Running {
    pub child: Child,
    /// koordinator's pid as seen from here (inside `unshare`, its host pid).
    pub pid: i32,
    lines: Receiver<(Stream, String)>,
    pub seen: Vec<(Stream, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// A command line for koordinator: its arguments and extra environment.
pub struct Koordinator {
    command: Command,
    pid1: bool,
}

impl Koordinator {
    /// koordinator as a plain child of the test (not PID 1).
    pub fn plain<S: AsRef<OsStr>>(args: &[S]) -> Koordinator {
        let mut command = Command::new(koordinator_bin());
        command.args(args);
        Koordinator {
            command,
            pid1: false,
        }
    }

    /// koordinator as PID 1 of a new PID namespace with its own /proc.
    pub fn pid1<S: AsRef<OsStr>>(args: &[S]) -> Koordinator {
        let mut command = Command::new("unshare");
        command
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(koordinator_bin())
            .args(args);
        Koordinator {
            command,
            pid1: true,
        }
    }

    /// A command line that ends in koordinator (`setpriv ... koordinator`,
    /// a wrapper that execs it), as a plain child.
    pub fn command<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Koordinator {
        let mut command = Command::new(program);
        command.args(args);
        Koordinator {
            command,
            pid1: false,
        }
    }

    /// koordinator as a plain child with its own hostname (a new UTS
    /// namespace, needs root), as a pod's containers have.
    pub fn with_hostname<S: AsRef<OsStr>>(hostname: &str, args: &[S]) -> Koordinator {
        let mut command = Command::new("unshare");
        command
            .args([
                "--uts",
                "--",
                "sh",
                "-c",
                "hostname \"$1\" && shift && exec \"$@\"",
                "sh",
            ])
            .arg(hostname)
            .arg(koordinator_bin())
            .args(args);
        Koordinator {
            command,
            pid1: false,
        }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Koordinator {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Koordinator {
        self.command.env_remove(key);
        self
    }

    pub fn spawn(mut self) -> Running {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn koordinator");
        let (tx, lines) = mpsc::channel();
        for (stream, reader) in [
            (
                Stream::Out,
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            ),
            (Stream::Err, Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let pid = if self.pid1 {
            koordinator_under(child.id() as i32)
        } else {
            child.id() as i32
        };
        Running {
            child,
            pid,
            lines,
            seen: Vec::new(),
        }
    }
}

/// Finds the koordinator that `unshare --fork` started, once it has exec'd.
/// A short command may come and go between two looks: once `unshare` itself
/// has exited (a zombie until the test waits for it), there is nothing left
/// to signal, and its own pid is returned.
fn koordinator_under(unshare: i32) -> i32 {
    let bin = std::fs::canonicalize(koordinator_bin()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{unshare}/stat")).unwrap_or_default();
        if stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'))
        {
            return unshare;
        }
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() == Some(&bin) {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("koordinator did not start under unshare (pid {unshare})");
}

impl Running {
    /// Waits for a stdout line equal to `want`; panics with all output seen on timeout.
    pub fn expect_line(&mut self, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if self
            .seen
            .iter()
            .any(|(s, l)| *s == Stream::Out && l == want)
        {
            return;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => {
                    let hit = stream == Stream::Out && line == want;
                    self.seen.push((stream, line));
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line {want:?} within {timeout:?}; output so far: {:#?}",
            self.seen
        );
    }

    /// Waits for a stdout line for which `want` holds.
    pub fn expect_line_matching(&mut self, want: impl Fn(&str) -> bool, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if self.seen.iter().any(|(s, l)| *s == Stream::Out && want(l)) {
            return;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => {
                    let hit = stream == Stream::Out && want(&line);
                    self.seen.push((stream, line));
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no matching line within {timeout:?}; output so far: {:#?}",
            self.seen
        );
    }

    /// Collects output for `d`; for polling on stderr without a line to wait for.
    pub fn expect_no_line_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects.
        assert_eq!(
            unsafe { libc::kill(self.pid, signal) },
            0,
            "kill {} {signal}",
            self.pid
        );
    }

    /// Waits for the exit and returns the shell-style code (128+N for signal N).
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads catch up with what was written last.
                std::thread::sleep(Duration::from_millis(20));
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return code_of(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "koordinator did not exit within {timeout:?}; output: {:#?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stdout(&self) -> Vec<&str> {
        self.lines_of(Stream::Out)
    }

    pub fn stderr(&self) -> Vec<&str> {
        self.lines_of(Stream::Err)
    }

    fn lines_of(&self, stream: Stream) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
