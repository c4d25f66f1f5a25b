//! Measurements of an init (koordinator, tini, dumb-init, catatonit) that
//! shell cannot make precisely. Used by `bench/run.sh`.
//!
//! initbench orphans N            as the command under INIT as PID 1: hand N
//!                                zombies to PID 1 at once, print the ms until
//!                                it has reaped them all
//! initbench signal-target        the command: print the CLOCK_MONOTONIC ns
//!                                at which each SIGUSR1 arrives
//! initbench signal-latency RUNS INIT...   send RUNS SIGUSR1 to INIT running
//!                                signal-target; print median and p99 µs
//! initbench rss INIT...          peak RSS (VmHWM) and anonymous RSS (kB) of INIT
//!                                while its command sleeps
//! initbench stamp                print CLOCK_MONOTONIC ns at start, then sleep
//! initbench term-stamp           print "ready"; on SIGTERM print the ns and exit 0
//! initbench startup RUNS NAME=CMD...
//!                                start-to-exit time of each command, the
//!                                commands taking turns (A B C A B C ...):
//!                                median and p90 µs each
//! initbench exit-stamp           print the CLOCK_MONOTONIC ns, then exit 0
//! initbench storm-target         the command of a signal storm: counts what
//!                                arrives, makes orphans for PID 1 to reap, and
//!                                on SIGTERM prints its counts and exits 7

use koordinator_integration::harness::{monotonic_ns, status_kb};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// PID 1's user and system CPU time so far, in clock ticks (/proc/1/stat).
fn init_user_sys_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/1/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let at = |i: usize| fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
    (at(11), at(12))
}

/// CPU time PID 1 has used so far, in ns (/proc/1/schedstat's first field).
fn init_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/1/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// How many children PID 1 has (zombies included), from /proc.
fn children_of_pid1() -> usize {
    std::fs::read_to_string("/proc/1/task/1/children").map_or(0, |s| s.split_whitespace().count())
}

/// Reaping throughput of the init (PID 1): an intermediate process makes N
/// children that exit at once, then exits itself, so N zombies are
/// re-parented to PID 1 together. Measured: the time until PID 1 has no
/// child left but this command.
fn orphans(n: usize) {
    // SAFETY: fork; the intermediate process only forks, sleeps and _exits.
    let intermediate = unsafe { libc::fork() };
    if intermediate == 0 {
        for _ in 0..n {
            // SAFETY: the grandchild only calls _exit.
            if unsafe { libc::fork() } == 0 {
                unsafe { libc::_exit(0) };
            }
        }
        // Let the last grandchildren exit, so all N are zombies when we go.
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::_exit(0) };
    }
    let cpu_before = init_cpu_ns();
    let ticks_before = init_user_sys_ticks();
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(intermediate, std::ptr::null_mut(), 0) };
    let start = Instant::now();
    while children_of_pid1() > 1 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let wall = start.elapsed();
    let ticks = init_user_sys_ticks();
    println!(
        "reaped_ms={:.1} init_cpu_ms={:.1} init_user_ticks={} init_sys_ticks={}",
        wall.as_secs_f64() * 1000.0,
        (init_cpu_ns() - cpu_before) as f64 / 1e6,
        ticks.0 - ticks_before.0,
        ticks.1 - ticks_before.1
    );
}

static GOT: AtomicBool = AtomicBool::new(false);
static mut AT: u64 = 0;

/// Records when a signal arrived; both stand-ins use it.
extern "C" fn record_arrival(_: libc::c_int) {
    // SAFETY: a single writer (this handler), read after GOT is seen.
    unsafe { AT = monotonic_ns() };
    GOT.store(true, Ordering::SeqCst);
}

fn signal_target() {
    // SAFETY: installing a handler that only stores two values.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            record_arrival as *const () as libc::sighandler_t,
        )
    };
    println!("ready");
    let out = std::io::stdout();
    loop {
        if GOT.swap(false, Ordering::SeqCst) {
            // SAFETY: see record_arrival.
            let at = unsafe { AT };
            let _ = writeln!(out.lock(), "{at}");
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn signal_latency(runs: usize, init: &[String]) {
    let me = std::env::current_exe().unwrap();
    let mut child = Command::new(&init[0])
        .args(&init[1..])
        .arg(&me)
        .arg("signal-target")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let sent = monotonic_ns();
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        let got: u64 = lines.next().unwrap().unwrap().parse().unwrap();
        samples.push(got.saturating_sub(sent) / 1000);
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGTERM, not SIGKILL: the init forwards it, so the target goes too.
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    samples.sort_unstable();
    println!(
        "median_us={} p99_us={}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
}

fn rss(init: &[String]) {
    let mut child = Command::new(&init[0])
        .args(&init[1..])
        .args(["sleep", "1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id() as i32;
    let (hwm, anon) = (status_kb(pid, "VmHWM"), status_kb(pid, "RssAnon"));
    child.wait().unwrap();
    println!("{hwm} {anon}");
}

fn term_stamp() {
    // SAFETY: installing a handler that only stores two values.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            record_arrival as *const () as libc::sighandler_t,
        )
    };
    println!("ready");
    while !GOT.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_micros(50));
    }
    // SAFETY: see record_arrival.
    println!("{}", unsafe { AT });
}

static COUNTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn count(_: libc::c_int) {
    COUNTED.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

fn storm_target() {
    // SAFETY: handlers that only touch atomics.
    unsafe {
        for s in koordinator_integration::harness::storm_signals() {
            libc::signal(s, count as *const () as libc::sighandler_t);
        }
        libc::signal(libc::SIGTERM, term as *const () as libc::sighandler_t);
    }
    println!("ready");
    let mut orphans = 0u64;
    while !TERM.load(Ordering::SeqCst) {
        // A child that forks a grandchild and exits: the grandchild is
        // re-parented to PID 1 and reaped there when it exits.
        // SAFETY: the children only fork and _exit.
        unsafe {
            let child = libc::fork();
            if child == 0 {
                if libc::fork() == 0 {
                    libc::_exit(0);
                }
                libc::_exit(0);
            }
            if child > 0 {
                libc::waitpid(child, std::ptr::null_mut(), 0);
                orphans += 1;
            }
        }
    }
    println!(
        "got TERM after {} signals, {orphans} orphans made",
        COUNTED.load(Ordering::Relaxed)
    );
    std::process::exit(7);
}

/// Start-to-exit wall time of each command, interleaved run by run, so that
/// a machine whose speed drifts affects them all alike.
fn startup(runs: usize, commands: &[String]) {
    let parsed: Vec<(String, Vec<String>)> = commands
        .iter()
        .map(|c| {
            let (name, cmd) = c.split_once('=').expect("NAME=COMMAND");
            (
                name.to_string(),
                cmd.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); parsed.len()];
    for run in 0..runs + runs / 10 {
        for (i, (_, argv)) in parsed.iter().enumerate() {
            let started = Instant::now();
            let status = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run the command");
            let took = started.elapsed().as_secs_f64() * 1e6;
            assert!(status.success(), "{argv:?}: {status}");
            if run >= runs / 10 {
                times[i].push(took); // the first tenth warms up
            }
        }
    }
    for ((name, _), t) in parsed.iter().zip(&mut times) {
        t.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| t[((t.len() - 1) as f64 * p) as usize];
        println!("{name} median_us={:.0} p90_us={:.0}", at(0.5), at(0.9));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("orphans") => orphans(args[1].parse().unwrap()),
        Some("signal-target") => signal_target(),
        Some("signal-latency") => signal_latency(args[1].parse().unwrap(), &args[2..]),
        Some("rss") => rss(&args[1..]),
        Some("stamp") => {
            println!("{}", monotonic_ns());
            std::thread::sleep(Duration::from_secs(3600));
        }
        Some("term-stamp") => term_stamp(),
        Some("storm-target") => storm_target(),
        Some("startup") => startup(args[1].parse().unwrap(), &args[2..]),
        // Prints CLOCK_MONOTONIC ns as the last thing before exiting 0.
        Some("exit-stamp") => println!("{}", monotonic_ns()),
        _ => {
            eprintln!("usage: initbench orphans N | signal-target | signal-latency RUNS INIT... | rss INIT...");
            std::process::exit(2);
        }
    }
}
