//! Signal numbers, names, and the mask koordinator runs under.
//!
//! Signals are plain `i32` numbers here rather than `nix::sys::signal::Signal`,
//! because that enum has no real-time signals and an init must forward those too.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// The names koordinator accepts and prints, without the `SIG` prefix.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The highest signal number on Linux (`SIGRTMAX` as the kernel sees it).
pub const MAX_SIGNAL: i32 = 64;

/// Signals the kernel raises synchronously for a fault in koordinator itself.
/// Blocking them would turn a crash into a hang, so they stay unblocked.
const SYNCHRONOUS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Parses `"SIGTERM"`, `"term"`, `"15"` or `"RTMIN+3"` into a signal number.
pub fn parse(text: &str) -> Option<i32> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i32>() {
        return (1..=MAX_SIGNAL).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| *name == bare) {
        return Some(n);
    }
    let (base, offset) = if let Some(rest) = bare.strip_prefix("RTMIN") {
        (libc::SIGRTMIN(), rest)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        (libc::SIGRTMAX(), rest)
    } else {
        return None;
    };
    let n = match offset {
        "" => base,
        _ => base + offset.parse::<i32>().ok()?,
    };
    (libc::SIGRTMIN()..=libc::SIGRTMAX())
        .contains(&n)
        .then_some(n)
}

/// `SIGTERM`, `SIGRTMIN+2`, or the bare number for anything unnamed.
pub fn name(signal: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == signal) {
        return format!("SIG{name}");
    }
    let rtmin = libc::SIGRTMIN();
    if (rtmin..=libc::SIGRTMAX()).contains(&signal) {
        return match signal - rtmin {
            0 => "SIGRTMIN".to_string(),
            k => format!("SIGRTMIN+{k}"),
        };
    }
    signal.to_string()
}

/// Every signal koordinator wants to see through its signalfd.
pub fn handled_set() -> SigSet {
    let mut set = SigSet::all();
    for s in SYNCHRONOUS {
        set.remove(s);
    }
    set
}

/// Blocks every handled signal in the calling (and only) thread.
///
/// This must run before any thread exists: threads inherit the mask, and a
/// SIGTERM sent to PID 1 of a PID namespace could otherwise land on a thread
/// with the default disposition, where the kernel silently discards it.
pub fn block_all() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&handled_set()), None)
}

/// A rewrite table from `-r FROM:TO` and the spec's `rewriteSignals`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrites(Vec<(i32, i32)>);

impl Rewrites {
    /// Adds or replaces the rule for `from`; later rules win.
    pub fn insert(&mut self, from: i32, to: i32) {
        self.0.retain(|(f, _)| *f != from);
        self.0.push((from, to));
    }

    pub fn apply(&self, signal: i32) -> i32 {
        self.0
            .iter()
            .find(|(from, _)| *from == signal)
            .map_or(signal, |(_, to)| *to)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(i32, i32)> {
        self.0.iter()
    }
}

/// Parses the `FROM:TO` argument of `-r`.
pub fn parse_rewrite(text: &str) -> Option<(i32, i32)> {
    let (from, to) = text.split_once(':')?;
    Some((parse(from)?, parse(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_prefix_and_numbers_parse() {
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("term"), Some(15));
        assert_eq!(parse("15"), Some(15));
        assert_eq!(parse("sigquit"), Some(3));
        assert_eq!(parse("RTMIN+2"), Some(libc::SIGRTMIN() + 2));
    }

    #[test]
    fn unknown_or_out_of_range_signals_are_rejected() {
        assert_eq!(parse("SIGFOO"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(parse("RTMIN+99"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn names_round_trip() {
        for n in 1..=MAX_SIGNAL {
            if n == 32 || n == 33 {
                continue; // reserved by the C library, below SIGRTMIN
            }
            assert_eq!(parse(&name(n)), Some(n), "signal {n} named {}", name(n));
        }
    }

    #[test]
    fn later_rewrite_rules_replace_earlier_ones() {
        let mut r = Rewrites::default();
        r.insert(15, 3);
        r.insert(15, 2);
        assert_eq!(r.apply(15), 2);
        assert_eq!(r.apply(1), 1);
        assert_eq!(parse_rewrite("TERM:QUIT"), Some((15, 3)));
        assert_eq!(parse_rewrite("TERM"), None);
    }
}
