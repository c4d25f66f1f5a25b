//! Starting the command, signalling it, and reaping every child that dies.
//!
//! The command is started with fork and execvp directly rather than with
//! `std::process::Command`: an init needs none of Command's environment
//! capture and pipes, and that code was the largest part of what a plain
//! init executes (see BENCHMARKS.md, "Where the pages go"). Between fork and
//! exec the child makes only async-signal-safe system calls on data
//! prepared before the fork, since other threads (the API source, probes)
//! may hold locks at that moment.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Why the command could not be started; both end koordinator (127 / 126).
#[derive(Debug)]
pub enum SpawnError {
    NotFound { command: String },
    NotExecutable { command: String, reason: io::Error },
}

impl SpawnError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::NotFound { command } => write!(
                f,
                "cannot run {command:?}: not found (check the path, or that it is on PATH in this image)"
            ),
            SpawnError::NotExecutable { command, reason } => {
                let hint = match reason.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE) => {
                        "the open-file limit is too low: raise the container's nofile limit (ulimit -n)"
                    }
                    Some(libc::EAGAIN) => {
                        "no process could be created: is the container's process limit (pids.max, ulimit -u) reached?"
                    }
                    Some(libc::E2BIG) => "the environment and arguments are larger than the kernel allows",
                    Some(libc::ENOMEM) => "out of memory: raise the container's memory limit",
                    _ => "is it an executable for this platform, with mode +x?",
                };
                write!(f, "cannot run {command:?}: {reason} ({hint})")
            }
        }
    }
}

/// How koordinator itself was started, to be handed back to the command.
#[derive(Clone, Copy, Debug)]
pub struct Inherited {
    /// SIGPIPE was ignored when koordinator started (`nohup`-style callers);
    /// the command gets the same disposition back.
    pub sigpipe_ignored: bool,
    /// stdin is a terminal: the command becomes its foreground process group.
    pub has_tty: bool,
}

impl Inherited {
    /// Reads the state koordinator was started in. Call before changing any of it.
    pub fn capture() -> Inherited {
        // SAFETY: querying a disposition with a null new action changes nothing.
        let sigpipe_ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        // SAFETY: isatty only inspects the descriptor.
        let has_tty = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
        Inherited {
            sigpipe_ignored,
            has_tty,
        }
    }
}

/// Starts the command in its own process group and returns its pid.
pub fn spawn(argv: &[OsString], inherited: Inherited) -> Result<i32, SpawnError> {
    let name = argv[0].to_string_lossy().into_owned();
    // Everything the child needs is made before the fork.
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| SpawnError::NotExecutable {
            command: name.clone(),
            reason: io::Error::new(io::ErrorKind::InvalidInput, "an argument holds a NUL byte"),
        })?;
    let mut pointers: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // The child reports a failed exec through this pipe; a successful exec
    // closes it (O_CLOEXEC), so the parent reads end-of-file.
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::NotExecutable {
            command: name,
            reason: io::Error::last_os_error(),
        });
    }
    let [read_end, write_end] = pipe;
    // SAFETY: fork; the child below only makes async-signal-safe calls.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child, between fork and exec: raw system calls only.
        unsafe { exec_child(&pointers, inherited, write_end) }
    }
    // Read errno before close() can change it.
    let fork_error = (pid < 0).then(io::Error::last_os_error);
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(write_end) };
    if let Some(reason) = fork_error {
        // SAFETY: closing a descriptor we own.
        unsafe { libc::close(read_end) };
        return Err(SpawnError::NotExecutable {
            command: name,
            reason,
        });
    }
    let mut errno = [0u8; 4];
    let n = loop {
        // SAFETY: read into a 4-byte buffer.
        let n = unsafe { libc::read(read_end, errno.as_mut_ptr().cast(), 4) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(read_end) };
    if n != 4 {
        return Ok(pid);
    }
    // The exec failed and the child has exited: the reap loop collects it.
    let reason = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
    Err(match reason.raw_os_error() {
        Some(libc::ENOENT) => SpawnError::NotFound { command: name },
        _ => SpawnError::NotExecutable {
            command: name,
            reason,
        },
    })
}

/// The child's side: set up, exec, or report errno and exit 127.
///
/// # Safety
/// Call only in a freshly forked child. `argv` is a NULL-terminated array of
/// C strings that outlives the call.
unsafe fn exec_child(argv: &[*const libc::c_char], inherited: Inherited, report: i32) -> ! {
    // Own process group, so a terminal's ^C and `-g` reach the command
    // and its children but not koordinator.
    libc::setpgid(0, 0);
    if inherited.has_tty {
        // In the child, like tini: SIGTTOU is still blocked here, so a
        // background group may take the terminal. Errors (no controlling
        // terminal) are not fatal.
        libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
    }
    // Rust's runtime never ran its SIGPIPE setup here (koordinator is
    // `no_main`), so SIGPIPE is as koordinator was started with; the
    // handled set is blocked, never caught, so every other disposition is
    // the inherited one too. The mask is what must be reset: the command
    // must not start with SIGTERM blocked.
    if inherited.sigpipe_ignored {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::execvp(argv[0], argv.as_ptr());
    let errno = *libc::__errno_location();
    libc::write(report, (&errno as *const i32).cast(), 4);
    libc::_exit(127)
}

/// Sends `signal` to the command, or to its whole process group.
pub fn signal(pid: i32, group: bool, signal: i32) {
    let target = if group { -pid } else { pid };
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(target, signal) } != 0 {
        let err = io::Error::last_os_error();
        // ESRCH: it exited a moment ago; its exit is about to be reaped.
        if err.raw_os_error() != Some(libc::ESRCH) {
            log::warn!(
                "could not send {} to pid {target}: {err}",
                crate::init::signals::name(signal)
            );
        }
    }
}

/// How a reaped process ended, as a shell would report it: the exit code,
/// or 128+N for a death by signal N.
pub fn status_code(raw: i32) -> i32 {
    if libc::WIFEXITED(raw) {
        libc::WEXITSTATUS(raw)
    } else if libc::WIFSIGNALED(raw) {
        128 + libc::WTERMSIG(raw)
    } else {
        raw
    }
}

/// Reaps every child that has exited, calling `on_exit(pid, code)` for each.
/// Returns true when koordinator has no children left at all.
///
/// SIGCHLD coalesces and orphans are re-parented to us, so this loops until
/// the kernel says nothing more is waiting. libc's waitpid is used directly:
/// nix's refuses statuses from real-time signals it has no enum value for.
pub fn reap(mut on_exit: impl FnMut(i32, i32)) -> bool {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid writes only into `raw`.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        match pid {
            0 => return false,
            p if p > 0 => on_exit(p, status_code(raw)),
            _ => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => return true,
                    _ => {
                        log::warn!("waitpid: {err}");
                        return false;
                    }
                }
            }
        }
    }
}

/// The pids whose parent is koordinator, read from /proc. Used when the
/// command has exited and `--orphan-grace` asks to stop what it left behind.
pub fn children() -> Vec<i32> {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_shell_conventions() {
        assert_eq!(status_code(42 << 8), 42);
        assert_eq!(status_code(libc::SIGKILL), 137);
        assert_eq!(status_code(libc::SIGTERM | 0x80), 143); // with a core dump
    }

    #[test]
    fn this_process_is_its_childs_parent() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(children().contains(&(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
