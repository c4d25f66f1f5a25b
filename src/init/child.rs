//! Starting the command, signalling it, and reaping every child that dies.
//!
//! The command is started with `clone(CLONE_VM | CLONE_VFORK)`, as musl's
//! own `posix_spawn` does, not with `std::process::Command`: an init needs
//! none of Command's environment capture and pipes, that code was the
//! largest part of what a plain init executes (BENCHMARKS.md, "Where the
//! pages go"), and sharing memory until the exec makes the start cheaper
//! (no page tables to copy, no pipe for the exec error). The child runs on a
//! stack of its own and makes only async-signal-safe calls on data prepared
//! before the clone, since other threads (the API source, probes) may hold
//! locks at that moment; the parent is suspended until the exec.
//!
//! Orphans are reaped one `waitpid` each. (Ignoring SIGCHLD would have the
//! kernel reap them for free, but exec resets every process's exit signal
//! to SIGCHLD, so the command's own status would be lost with them.)

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

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
                let hint = limit_hint(reason).unwrap_or(match reason.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        "no process could be created: is the container's process limit (pids.max, ulimit -u) reached?"
                    }
                    Some(libc::E2BIG) => "the environment and arguments are larger than the kernel allows",
                    _ => "is it an executable for this platform, with mode +x?",
                });
                write!(f, "cannot run {command:?}: {reason} ({hint})")
            }
        }
    }
}

/// What to do about a container limit that refused a descriptor or memory,
/// when that is what `e` says.
pub fn limit_hint(e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error()? {
        libc::EMFILE | libc::ENFILE => {
            Some("the open-file limit is too low: raise the container's nofile limit (ulimit -n)")
        }
        libc::ENOMEM => Some("out of memory: raise the container's memory limit"),
        _ => None,
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

/// What the child needs, prepared before the clone.
struct ChildArgs<'a> {
    argv: &'a [*const libc::c_char],
    inherited: Inherited,
    /// errno of a failed exec, written by the child (memory is shared).
    errno: AtomicI32,
}

/// The child's stack size: execvp builds candidate paths on it.
const CHILD_STACK: usize = 64 << 10;

/// Starts the command in its own process group and returns its pid.
pub fn spawn(argv: &[OsString], inherited: Inherited) -> Result<i32, SpawnError> {
    let name = || argv[0].to_string_lossy().into_owned();
    let not_executable = |reason| SpawnError::NotExecutable {
        command: name(),
        reason,
    };
    // Everything the child needs is made before the clone: the arguments as
    // C strings one after another in one buffer, and pointers to each.
    let mut strings = Vec::new();
    for arg in argv {
        if arg.as_bytes().contains(&0) {
            return Err(not_executable(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument holds a NUL byte",
            )));
        }
        strings.extend_from_slice(arg.as_bytes());
        strings.push(0);
    }
    let mut pointers: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 1);
    let mut at = 0;
    for arg in argv {
        pointers.push(strings[at..].as_ptr().cast());
        at += arg.len() + 1;
    }
    pointers.push(std::ptr::null());
    let child = ChildArgs {
        argv: &pointers,
        inherited,
        errno: AtomicI32::new(0),
    };
    // Never read by us, only written by the child before it reads: no need
    // to fill it first.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // The stack grows down; the top, 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
    // SAFETY: the child runs `exec_child` on its own stack, sharing our
    // memory (CLONE_VM) while we are suspended (CLONE_VFORK) until it execs
    // or exits; `child`, `strings` and `stack` outlive that.
    let pid = unsafe {
        libc::clone(
            exec_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&child as *const ChildArgs).cast_mut().cast(),
        )
    };
    if pid < 0 {
        return Err(not_executable(io::Error::last_os_error()));
    }
    drop(stack);
    let errno = child.errno.load(Ordering::SeqCst);
    if errno == 0 {
        return Ok(pid);
    }
    // The exec failed and the child has exited: the reap loop collects it.
    let reason = io::Error::from_raw_os_error(errno);
    Err(match errno {
        libc::ENOENT => SpawnError::NotFound { command: name() },
        _ => not_executable(reason),
    })
}

/// The child's side: set up, exec, or record errno and exit 127.
///
/// # Safety
/// Runs in the clone made by [`spawn`], on its own stack, sharing the
/// parent's memory while the parent is suspended: only async-signal-safe
/// calls, no allocation, nothing written but `errno` of [`ChildArgs`].
extern "C" fn exec_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive until we exec or exit.
    let child = unsafe { &*(arg as *const ChildArgs) };
    let inherited = child.inherited;
    // SAFETY: raw system calls on data prepared before the clone.
    unsafe {
        // Own process group, so a terminal's ^C and `-g` reach the command
        // and its children but not koordinator.
        libc::setpgid(0, 0);
        if inherited.has_tty {
            // In the child, like tini: SIGTTOU is still blocked here, so a
            // background group may take the terminal. Errors (no controlling
            // terminal) are not fatal.
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        }
        // The command gets the dispositions koordinator was started with:
        // koordinator is `no_main`, so Rust's runtime never touched SIGPIPE,
        // and every other signal is blocked, never caught (ignored ones stay
        // ignored across exec, as they should).
        if inherited.sigpipe_ignored {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        // The mask must be emptied: the command must not start with SIGTERM blocked.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execvp(child.argv[0], child.argv.as_ptr());
        child
            .errno
            .store(*libc::__errno_location(), Ordering::SeqCst);
        libc::_exit(127)
    }
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
