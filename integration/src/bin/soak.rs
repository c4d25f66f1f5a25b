//! A soak under faults: many koordinators against one fake API server for a
//! while, faults injected at random, pods going through start and stop
//! cycles; then a signal storm at a PID-1 koordinator. `make soak` runs it
//! for 10 minutes; `make test` runs a short one.
//!
//! soak [--pods N] [--duration D] [--storm SIGNALS]
//!
//! Half of the N pods are long-lived: a sidecar koordinator that watches its
//! pod for the whole run (its RSS, open fds and threads are sampled every
//! 10 s: they must stay flat) and is stopped at the end by its stop
//! dependency. The other half cycle: main waits for its proxy, runs briefly,
//! exits; the proxy is stopped; both must exit 0; then the pod starts
//! again under a new name. Faults, at random: 500s, dropped streams,
//! stalls, ERROR 410, HTTP 410, malformed, oversized and wrongly shaped
//! lines, 429 with Retry-After, compaction, token rotation, and 403 windows
//! shorter than the 60 s limit. Exits 0 when every pod reached its expected
//! outcome and nothing grew; prints the figures either way.

use koordinator_integration::apiserver::{Access, ApiServer, Fault, PodFiles};
use koordinator_integration::harness::{status_kb, Koordinator, Running};
use koordinator_integration::pods::{self, running, terminated};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "soak";
const WATCH_TIMEOUT: &str = "20s";
/// How long a cycle may take, faults included (a stalled watch ends at
/// timeoutSeconds + 2 s; a 403 window lasts up to 20 s).
const CYCLE_LIMIT: Duration = Duration::from_secs(90);

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn koordinator(
    server: &ApiServer,
    files: &PodFiles,
    pod: &str,
    spec: &str,
    args: &[&str],
) -> Running {
    Koordinator::plain(args)
        .env("KOORDINATOR_SPEC", spec)
        .env("KOORDINATOR_POD_NAME", pod)
        .env("KOORDINATOR_SERVICEACCOUNT_DIR", files.serviceaccount())
        .env("KOORDINATOR_STATE_DIR", "")
        .env("KOORDINATOR_WATCH_TIMEOUT", WATCH_TIMEOUT)
        .env("KOORDINATOR_LOG", "error")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", server.port.to_string())
        .spawn()
}

fn create(server: &ApiServer, name: &str) {
    server.create_pod(
        pods::pod(NAMESPACE, name)
            .container("main", Some(r#"{"startDeps":["proxy"]}"#))
            .container("proxy", Some(r#"{"stopDeps":["main"]}"#))
            .build(),
    );
}

/// What a koordinator that should have exited is doing: each thread's state
/// and kernel stack, and the last requests the server saw for its pod.
fn explain(k: &Running, pod: &str, server: &ApiServer) -> String {
    let mut why = format!("pid {}; threads:", k.pid);
    for task in std::fs::read_dir(format!("/proc/{}/task", k.pid))
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = task.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stack = std::fs::read_to_string(dir.join("stack")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_string();
        let top: Vec<&str> = stack.lines().take(5).collect();
        why.push_str(&format!("\n  {} {state}: {}", comm.trim(), top.join(" < ")));
    }
    let requests: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| {
            r.query
                .get("fieldSelector")
                .is_some_and(|f| f.ends_with(pod))
        })
        .map(|r| {
            let kind = if r.is_watch() { "watch" } else { "list" };
            format!(
                "{kind} {} at -{:.1}s",
                r.status,
                r.at.elapsed().as_secs_f64()
            )
        })
        .collect();
    let n = requests.len();
    why.push_str(&format!(
        "\n  last requests for {pod}: {:?}\n  stderr: {:?}",
        &requests[n.saturating_sub(8)..],
        k.stderr()
    ));
    why
}

/// (threads, open fds, VmRSS kB) of a process.
type Sample = (u64, u64, u64);

/// A long-lived sidecar: its pod's name, the process, what was sampled.
type LongLived = (String, Running, Vec<Sample>);

fn sample(pid: i32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    (threads, fds, status_kb(pid, "VmRSS"))
}

enum Step {
    /// Waiting for main to be started (proxy marked ready at `ready_at`).
    Starting { ready_at: Instant },
    /// main runs; it exits by itself.
    Running,
    /// main exited and the kubelet said so: the proxy must stop, with 0.
    Stopping { since: Instant },
}

struct Cycle {
    name: String,
    main: Running,
    proxy: Running,
    began: Instant,
    step: Step,
}

fn main() {
    let mut pods_total = 200usize;
    let mut duration = Duration::from_secs(600);
    let mut storm = 100_000usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--pods" => pods_total = args[i + 1].parse().expect("--pods N"),
            "--duration" => duration = humantime::parse_duration(&args[i + 1]).expect("--duration"),
            "--storm" => storm = args[i + 1].parse().expect("--storm SIGNALS"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let mut failures: Vec<String> = Vec::new();
    soak(pods_total, duration, &mut failures);
    if storm > 0 {
        signal_storm(storm, &mut failures);
    }
    if failures.is_empty() {
        println!("soak: passed");
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}

fn soak(pods_total: usize, duration: Duration, failures: &mut Vec<String>) {
    let server = ApiServer::start();
    let mut token = String::from("soak-token-0");
    server.set_token(&token, Access::AllPods);
    let files = PodFiles::new(&server, NAMESPACE, &token);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let started = Instant::now();

    // Long-lived sidecars: watch for the whole run.
    let long_count = pods_total / 2;
    let mut long: Vec<LongLived> = Vec::new();
    for n in 0..long_count {
        let name = format!("long-{n}");
        create(&server, &name);
        server.modify_pod(NAMESPACE, &name, |p| {
            pods::set_status(p, "main", running(true))
        });
        let k = koordinator(
            &server,
            &files,
            &name,
            r#"{"stopDeps":["main"]}"#,
            &["sleep", "3600"],
        );
        long.push((name, k, Vec::new()));
    }
    // Cycling pods: two koordinators each.
    let cycle_count = (pods_total - long_count) / 2;
    let mut generation = 0usize;
    let start_cycle = |server: &ApiServer, slot: usize, generation: &mut usize| {
        *generation += 1;
        let name = format!("cycle-{slot}-{generation}");
        create(server, &name);
        let main = koordinator(
            server,
            &files,
            &name,
            r#"{"startDeps":["proxy"]}"#,
            &["sh", "-c", "echo started; sleep 0.2"],
        );
        let proxy = koordinator(
            server,
            &files,
            &name,
            r#"{"stopDeps":["main"]}"#,
            &["sleep", "3600"],
        );
        server.modify_pod(NAMESPACE, &name, |p| {
            pods::set_status(p, "proxy", running(false))
        });
        Cycle {
            name,
            main,
            proxy,
            began: Instant::now(),
            step: Step::Starting {
                ready_at: Instant::now() + Duration::from_millis(200),
            },
        }
    };
    let mut cycles: Vec<Cycle> = (0..cycle_count)
        .map(|slot| start_cycle(&server, slot, &mut generation))
        .collect();
    let mut completed = 0usize;
    let mut stop_times: Vec<f64> = Vec::new();
    let mut faults = 0usize;
    let mut next_fault = Instant::now();
    let mut next_sample = Instant::now() + Duration::from_secs(5);
    let mut next_rotation = Instant::now() + Duration::from_secs(30);
    let mut next_compaction = Instant::now() + Duration::from_secs(45);
    let mut forbidden_until: Option<Instant> = None;
    let mut next_forbidden = Instant::now() + Duration::from_secs(60);

    while started.elapsed() < duration {
        let now = Instant::now();
        if now >= next_fault {
            faults += 1;
            next_fault = now + Duration::from_millis(200 + rng.below(600));
            let fault = match rng.below(10) {
                0 => Fault::Status500,
                1 => Fault::DropMidStream,
                2 => Fault::Stall(Duration::from_secs(60)),
                3 => Fault::Error410InStream,
                4 => Fault::Http410,
                5 => Fault::MalformedLine,
                6 => Fault::OversizedLine,
                7 => Fault::WrongShape,
                8 => Fault::TooManyRequests(1 + rng.below(3)),
                _ => Fault::Unavailable(1),
            };
            server.inject(fault);
        }
        if now >= next_rotation {
            // The kubelet writes the new token before the old one expires.
            next_rotation = now + Duration::from_secs(30 + rng.below(30));
            let old = token.clone();
            token = format!("soak-token-{}", started.elapsed().as_millis());
            server.set_token(&token, Access::AllPods);
            files.write_token(&token);
            std::thread::sleep(Duration::from_millis(100));
            server.remove_token(&old);
        }
        if now >= next_compaction {
            next_compaction = now + Duration::from_secs(45 + rng.below(30));
            server.compact();
        }
        match forbidden_until {
            Some(t) if now >= t => {
                server.set_token(&token, Access::AllPods);
                forbidden_until = None;
            }
            None if now >= next_forbidden => {
                // A RoleBinding removed and put back, within the 60 s limit.
                server.set_token(&token, Access::Nothing);
                forbidden_until = Some(now + Duration::from_secs(5 + rng.below(15)));
                next_forbidden = now + Duration::from_secs(90 + rng.below(60));
            }
            _ => {}
        }
        for (slot, c) in cycles.iter_mut().enumerate() {
            c.main.expect_no_line_for(Duration::ZERO);
            let mut done = false;
            match c.step {
                Step::Starting { ready_at } if Instant::now() >= ready_at => {
                    server.modify_pod(NAMESPACE, &c.name, |p| {
                        pods::set_status(p, "proxy", running(true))
                    });
                    c.step = Step::Running;
                }
                Step::Starting { .. } | Step::Running => {
                    if let Ok(Some(_)) = c.main.child.try_wait() {
                        let code = c.main.wait(Duration::from_secs(1));
                        if code != 0 {
                            failures.push(format!(
                                "{}: main exited {code}: {:?}",
                                c.name,
                                c.main.stderr()
                            ));
                        }
                        // The kubelet reports main's exit.
                        server.modify_pod(NAMESPACE, &c.name, |p| {
                            pods::set_status(p, "main", terminated(0))
                        });
                        c.step = Step::Stopping {
                            since: Instant::now(),
                        };
                    } else if c.began.elapsed() > CYCLE_LIMIT {
                        let why = explain(&c.main, &c.name, &server);
                        failures.push(format!(
                            "{}: main did not start and end within {CYCLE_LIMIT:?}: {why}",
                            c.name
                        ));
                        done = true;
                    }
                }
                Step::Stopping { since } => {
                    if let Ok(Some(_)) = c.proxy.child.try_wait() {
                        let code = c.proxy.wait(Duration::from_secs(1));
                        if code != 0 {
                            failures.push(format!(
                                "{}: proxy exited {code}: {:?}",
                                c.name,
                                c.proxy.stderr()
                            ));
                        }
                        completed += 1;
                        stop_times.push(since.elapsed().as_secs_f64());
                        done = true;
                    } else if since.elapsed() > CYCLE_LIMIT {
                        let why = explain(&c.proxy, &c.name, &server);
                        failures.push(format!(
                            "{}: the proxy was not stopped within {CYCLE_LIMIT:?}: {why}",
                            c.name
                        ));
                        done = true;
                    }
                }
            }
            if done {
                let old = std::mem::replace(c, start_cycle(&server, slot, &mut generation));
                server.delete_pod(NAMESPACE, &old.name);
                drop(old);
            }
        }
        if now >= next_sample {
            next_sample = now + Duration::from_secs(10);
            for (name, k, samples) in &mut long {
                if let Ok(Some(status)) = k.child.try_wait() {
                    failures.push(format!(
                        "{name}: the long-lived sidecar exited early ({status:?}): {:?}",
                        k.stderr()
                    ));
                    continue;
                }
                samples.push(sample(k.pid));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.set_token(&token, Access::AllPods);
    // Faults stop; once the last ones have passed (a 9 MiB line is freed
    // with the watch that failed on it), the final sample of each sidecar.
    std::thread::sleep(Duration::from_secs(5));
    for (_, k, samples) in &mut long {
        if let Ok(None) = k.child.try_wait() {
            samples.push(sample(k.pid));
        }
    }
    // The end: every long-lived pod's main exits; every sidecar stops with 0.
    for (name, _, _) in &long {
        server.modify_pod(NAMESPACE, name, |p| {
            pods::set_status(p, "main", terminated(0))
        });
    }
    let (mut rss_first, mut rss_last, mut rss_max) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fd_growth, mut thread_growth) = (0u64, 0u64);
    let deadline = Instant::now() + CYCLE_LIMIT;
    while Instant::now() < deadline
        && long
            .iter_mut()
            .any(|(_, k, _)| matches!(k.child.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (name, k, samples) in &mut long {
        if let Ok(None) = k.child.try_wait() {
            let why = explain(k, name, &server);
            failures.push(format!(
                "{name}: the sidecar was not stopped within {CYCLE_LIMIT:?} at the end: {why}"
            ));
        } else {
            let code = k.wait(Duration::from_secs(5));
            if code != 0 {
                failures.push(format!(
                    "{name}: the sidecar exited {code} at the end: {:?}",
                    k.stderr()
                ));
            }
        }
        if samples.len() >= 2 {
            let first = samples[0];
            let last = samples[samples.len() - 1];
            rss_first.push(first.2);
            rss_last.push(last.2);
            rss_max.push(samples.iter().map(|s| s.2).max().unwrap_or(0));
            fd_growth = fd_growth.max(last.1.saturating_sub(first.1));
            thread_growth = thread_growth.max(last.0.saturating_sub(first.0));
            if last.2 > first.2 + 512 {
                failures.push(format!(
                    "{name}: VmRSS grew from {} kB to {} kB",
                    first.2, last.2
                ));
            }
            if last.1 > first.1 + 1 || last.0 > first.0 {
                failures.push(format!(
                    "{name}: fds {} -> {}, threads {} -> {}",
                    first.1, last.1, first.0, last.0
                ));
            }
        }
    }
    for c in &mut cycles {
        let _ = c.main.child.kill();
        let _ = c.proxy.child.kill();
    }
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    println!(
        "soak: {:?}, {} koordinators at once ({} long-lived, {} cycling), {completed} cycles completed, {faults} faults injected, {} API requests",
        started.elapsed(),
        long_count + 2 * cycle_count,
        long_count,
        2 * cycle_count,
        server.request_count()
    );
    stop_times.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| {
        stop_times
            .get(((stop_times.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "soak: main's exit set in the API -> proxy exited: median {:.2}s, p99 {:.2}s, max {:.2}s (API only, through faults and the fake server's fan-out to every watch)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!(
        "soak: long-lived sidecars' VmRSS kB: first median {} max {}, last median {} max {}, max over the run {}; fd growth max {fd_growth}, thread growth max {thread_growth}",
        median(rss_first.clone()),
        max(&rss_first),
        median(rss_last.clone()),
        max(&rss_last),
        max(&rss_max)
    );
}

/// 100,000 mixed signals at a PID-1 koordinator whose command makes orphans
/// for it to reap all the while; then SIGTERM: the command must get it, and
/// koordinator must exit with the command's status.
fn signal_storm(count: usize, failures: &mut Vec<String>) {
    let bench = std::env::current_exe()
        .unwrap()
        .with_file_name("initbench")
        .display()
        .to_string();
    let mut k = Koordinator::pid1(&[&bench, "storm-target"]).spawn();
    k.expect_line("ready", Duration::from_secs(20));
    let signals = koordinator_integration::harness::storm_signals();
    let started = Instant::now();
    for i in 0..count {
        // SAFETY: kill has no memory effects.
        if unsafe { libc::kill(k.pid, signals[i % signals.len()]) } != 0 {
            failures.push(format!(
                "storm: kill failed at signal {i}: {}",
                std::io::Error::last_os_error()
            ));
            break;
        }
        // In bursts of 1,000, so that the storm overlaps the orphans' exits.
        if i % 1000 == 999 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let sent_in = started.elapsed();
    let hwm = status_kb(k.pid, "VmHWM");
    k.signal(libc::SIGTERM);
    let code = k.wait(Duration::from_secs(30));
    let got_term = k.stdout().iter().any(|l| l.starts_with("got TERM"));
    println!(
        "storm: {count} signals in {sent_in:?} at a PID-1 koordinator reaping orphans; then SIGTERM: command got it: {got_term}, exit {code}; koordinator VmHWM {hwm} kB; command saw: {:?}",
        k.stdout().last()
    );
    if !got_term || code != 7 {
        failures.push(format!(
            "storm: got TERM {got_term}, exit {code} (want 7): {:?} {:?}",
            k.stdout(),
            k.stderr()
        ));
    }
}
