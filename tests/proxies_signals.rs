//! Signals sent to koordinator reach the command: as PID 1 of a PID
//! namespace (needs root), with `-g` for the whole group, and rewritten by `-r`.

use koordinator_integration::harness::{require_root, Koordinator, Running};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// A command that reports every signal it gets, and exits 0 on TERM.
const REPORTER: &str = r#"
for s in HUP INT QUIT USR1 USR2 WINCH; do trap "echo got $s" $s; done
trap 'echo got TERM; exit 0' TERM
echo ready
while :; do sleep 0.01; done
"#;

fn reporter_as_pid1(extra: &[&str]) -> Running {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["sh", "-c", REPORTER]);
    let mut k = Koordinator::pid1(&args).spawn();
    k.expect_line("ready", T);
    k
}

#[test]
fn every_forwarded_signal_reaches_the_command_as_pid1() {
    if !require_root("every_forwarded_signal_reaches_the_command_as_pid1") {
        return;
    }
    let mut k = reporter_as_pid1(&[]);
    for (signal, name) in [
        (libc::SIGHUP, "HUP"),
        (libc::SIGINT, "INT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGWINCH, "WINCH"),
    ] {
        k.signal(signal);
        k.expect_line(&format!("got {name}"), T);
    }
    k.signal(libc::SIGTERM);
    k.expect_line("got TERM", T);
    assert_eq!(k.wait(T), 0);
}

#[test]
fn a_command_that_ignores_term_keeps_running() {
    if !require_root("a_command_that_ignores_term_keeps_running") {
        return;
    }
    let script = "trap '' TERM; echo ready; sleep 0.5; echo still here; exit 5";
    let mut k = Koordinator::pid1(&["sh", "-c", script]).spawn();
    k.expect_line("ready", T);
    k.signal(libc::SIGTERM);
    k.expect_line("still here", T);
    assert_eq!(k.wait(T), 5);
}

#[test]
fn a_signal_in_the_first_millisecond_is_not_lost() {
    if !require_root("a_signal_in_the_first_millisecond_is_not_lost") {
        return;
    }
    // If koordinator lost the TERM, the command would sleep for 30 s and exit 0.
    // The kernel drops a default-disposition signal sent to a namespace init
    // before its first instructions block it; no init can catch that. So the
    // signal goes out the moment the mask is in place, long before the event
    // loop, the child and the signalfd exist.
    let mut k = Koordinator::pid1(&["sleep", "30"]).spawn();
    let started = std::time::Instant::now();
    while !signals_blocked(k.pid) {
        assert!(
            started.elapsed() < T,
            "koordinator never blocked its signals"
        );
    }
    k.signal(libc::SIGTERM);
    assert_eq!(k.wait(T), 143);
}

/// True once koordinator has blocked its signals. While it waits in
/// `sigtimedwait` (a plain init), the kernel shows the waited-for signals
/// as unblocked (it keeps the real mask aside): that counts too.
fn signals_blocked(pid: i32) -> bool {
    signal_mask(pid) != 0
        || std::fs::read_to_string(format!("/proc/{pid}/wchan"))
            .is_ok_and(|w| w.contains("sigtimedwait"))
}

fn signal_mask(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap_or("0");
    u64::from_str_radix(blocked.trim(), 16).unwrap_or(0)
}

#[test]
fn a_signal_in_the_first_millisecond_is_not_lost_when_not_pid1() {
    let mut k = Koordinator::plain(&["sleep", "30"]).spawn();
    std::thread::sleep(Duration::from_millis(1));
    k.signal(libc::SIGTERM);
    assert_eq!(k.wait(T), 143);
}

#[test]
fn dash_g_reaches_a_grandchild_in_the_group() {
    if !require_root("dash_g_reaches_a_grandchild_in_the_group") {
        return;
    }
    // The grandchild reports USR1; the shell in between ignores it.
    // The shell in between says when it ignores USR1: a signal before that
    // would end it, and with it (as PID 1's command) the whole namespace.
    let script = r#"
        sh -c 'trap "echo grandchild got USR1; exit 0" USR1; echo ready; while :; do sleep 0.01; done' &
        trap '' USR1
        echo ignoring
        wait
    "#;
    let mut k = Koordinator::pid1(&["-g", "sh", "-c", script]).spawn();
    k.expect_line("ready", T);
    k.expect_line("ignoring", T);
    k.signal(libc::SIGUSR1);
    k.expect_line("grandchild got USR1", T);
    assert_eq!(k.wait(T), 0);
}

#[test]
fn without_dash_g_only_the_command_gets_the_signal() {
    let script = r#"
        sh -c 'trap "echo grandchild got USR1" USR1; echo ready; sleep 0.5; echo grandchild done' &
        trap 'echo child got USR1' USR1
        wait; wait
    "#;
    let mut k = Koordinator::plain(&["sh", "-c", script]).spawn();
    k.expect_line("ready", T);
    k.signal(libc::SIGUSR1);
    k.expect_line("child got USR1", T);
    k.expect_line("grandchild done", T);
    assert_eq!(k.wait(T), 0);
    assert!(!k.stdout().contains(&"grandchild got USR1"));
}

#[test]
fn kill_process_group_env_is_like_dash_g() {
    let script = r#"
        sh -c 'trap "echo grandchild got USR1; exit 0" USR1; echo ready; while :; do sleep 0.01; done' &
        trap '' USR1
        wait
    "#;
    let mut k = Koordinator::plain(&["sh", "-c", script])
        .env("KOORDINATOR_KILL_PROCESS_GROUP", "1")
        .spawn();
    k.expect_line("ready", T);
    k.signal(libc::SIGUSR1);
    k.expect_line("grandchild got USR1", T);
    assert_eq!(k.wait(T), 0);
}

#[test]
fn dash_r_rewrites_term_to_quit() {
    if !require_root("dash_r_rewrites_term_to_quit") {
        return;
    }
    let mut k = reporter_as_pid1(&["-r", "TERM:QUIT"]);
    k.signal(libc::SIGTERM);
    k.expect_line("got QUIT", T);
    assert!(!k.stdout().contains(&"got TERM"));
    k.signal(libc::SIGINT);
    k.expect_line("got INT", T);
    k.signal(libc::SIGKILL);
}

#[test]
fn ttin_and_ttou_are_not_forwarded() {
    let script = "trap 'echo got TTIN' TTIN; trap 'echo got TTOU' TTOU; trap 'echo got USR1; exit 0' USR1; echo ready; while :; do sleep 0.01; done";
    let mut k = Koordinator::plain(&["sh", "-c", script]).spawn();
    k.expect_line("ready", T);
    k.signal(libc::SIGTTIN);
    k.signal(libc::SIGTTOU);
    k.signal(libc::SIGUSR1);
    k.expect_line("got USR1", T);
    assert_eq!(k.wait(T), 0);
    assert_eq!(k.stdout(), ["ready", "got USR1"]);
}

#[test]
fn dash_p_delivers_a_signal_when_the_parent_dies() {
    // An intermediate shell starts koordinator and exits; the kernel then
    // sends koordinator SIGTERM, which it forwards to the command.
    let bin = koordinator_integration::harness::koordinator_bin();
    let inner =
        "trap 'echo command got TERM; exit 0' TERM; echo ready; while :; do sleep 0.01; done";
    let outer = format!(
        "{} -p TERM sh -c \"{inner}\" & sleep 0.5; echo parent exits",
        bin.display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &outer])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = std::io::BufRead::lines(reader)
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    // The pipe closes only when koordinator and its command have exited.
    let lines = rx
        .recv_timeout(T)
        .expect("koordinator did not stop after its parent died");
    child.wait().unwrap();
    assert_eq!(lines, ["ready", "parent exits", "command got TERM"]);
}

#[test]
fn dash_s_is_accepted() {
    let mut k = Koordinator::plain(&["-s", "sh", "-c", "exit 4"]).spawn();
    assert_eq!(k.wait(T), 4);
}
