//! Coordination benchmarks against the fake API server. Used by `bench/run.sh`.
//!
//! apibench latency RUNS     status change served -> command exec'd, and stop
//!                           dependency terminated -> SIGTERM in the command:
//!                           median and p99 (ms); koordinator's peak RSS
//! apibench quiet SECONDS WATCH_TIMEOUT
//!                           requests a quiet pod makes in SECONDS
//! apibench watchers N       N koordinators watching their own pods on one
//!                           server: private memory (RssAnon), peak RSS
//!                           (VmHWM) and threads of each, median and max

use koordinator_integration::apiserver::{Access, ApiServer, PodFiles};
use koordinator_integration::fixture::{Fixture, NAMESPACE, STARTED};
use koordinator_integration::harness::{monotonic_ns, status_kb, Koordinator};
use koordinator_integration::pods::{self, running, terminated};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn initbench() -> String {
    let me = std::env::current_exe().unwrap();
    me.with_file_name("initbench").display().to_string()
}

fn stats(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!("median_ms={:.2} p99_ms={:.2}", at(0.5), at(0.99))
}

fn latency(runs: usize) {
    let bench = initbench();
    let (mut start, mut stop, mut rss) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let f = Fixture::seed_job();
        let mut k = f
            .koordinator(r#"{"startDeps":["proxy"]}"#, &[&bench, "stamp"])
            .spawn();
        f.wait_for_watch(1);
        let t0 = monotonic_ns();
        f.set("proxy", running(true));
        k.expect_line_matching(|l| l.parse::<u64>().is_ok(), T);
        let exec: u64 = k.stdout().last().unwrap().parse().unwrap();
        start.push((exec - t0) as f64 / 1e6);
        rss = rss.max(status_kb(k.pid, "VmHWM"));
        k.signal(libc::SIGTERM); // forwarded: the stamp process goes too
        k.wait(T);

        let f = Fixture::seed_job();
        f.set("main", running(true));
        let mut k = f
            .koordinator(r#"{"stopDeps":["main"]}"#, &[&bench, "term-stamp"])
            .spawn();
        k.expect_line("ready", T);
        f.wait_for_watch(1);
        let t0 = monotonic_ns();
        f.set("main", terminated(0));
        assert_eq!(k.wait(T), 0);
        let got: u64 = k.stdout().last().unwrap().parse().unwrap();
        stop.push((got - t0) as f64 / 1e6);
    }
    println!("start {}", stats(start));
    println!("stop  {}", stats(stop));
    println!("peak_rss_kb={rss}");
}

fn quiet(seconds: u64, watch_timeout: &str) {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(r#"{"startDeps":["proxy"]}"#, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", watch_timeout)
        .spawn();
    std::thread::sleep(Duration::from_secs(seconds));
    let requests = f.requests();
    let lists = requests.iter().filter(|r| !r.is_watch()).count();
    println!(
        "seconds={seconds} watch_timeout={watch_timeout} requests={} lists={lists} watches={} peak_rss_kb={}",
        requests.len(),
        requests.len() - lists,
        status_kb(k.pid, "VmHWM")
    );
    k.signal(libc::SIGTERM);
    k.wait(T);
}

fn watchers(n: usize) {
    let server = ApiServer::start();
    server.set_token("bench", Access::AllPods);
    let files = PodFiles::new(&server, NAMESPACE, "bench");
    let mut running_ones = Vec::new();
    for i in 0..n {
        let name = format!("pod-{i}");
        server.create_pod(
            pods::pod(NAMESPACE, &name)
                .container("main", Some(r#"{"startDeps":["proxy"]}"#))
                .container("proxy", None)
                .build(),
        );
        let k = Koordinator::plain(STARTED)
            .env("KOORDINATOR_SPEC", r#"{"startDeps":["proxy"]}"#)
            .env("KOORDINATOR_POD_NAME", &name)
            .env("KOORDINATOR_SERVICEACCOUNT_DIR", files.serviceaccount())
            .env("KOORDINATOR_STATE_DIR", "")
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", server.port.to_string())
            .spawn();
        running_ones.push((name, k));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while server.requests().iter().filter(|r| r.is_watch()).count() < n {
        assert!(std::time::Instant::now() < deadline, "not all watching");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every pod changes once, as a pod does: each watcher decodes an event.
    for (name, _) in &running_ones {
        server.modify_pod(NAMESPACE, name, |pod| {
            pods::set_status(pod, "proxy", running(false))
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut anon: Vec<u64> = Vec::new();
    let mut hwm: Vec<u64> = Vec::new();
    let mut threads: Vec<u64> = Vec::new();
    for (_, k) in &running_ones {
        anon.push(status_kb(k.pid, "RssAnon"));
        hwm.push(status_kb(k.pid, "VmHWM"));
        let status = std::fs::read_to_string(format!("/proc/{}/status", k.pid)).unwrap_or_default();
        threads.push(
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        );
    }
    let summary = |mut v: Vec<u64>| {
        v.sort_unstable();
        format!("median={} max={}", v[v.len() / 2], v[v.len() - 1])
    };
    println!(
        "watchers={n} rss_anon_kb {} vm_hwm_kb {} threads {} requests={}",
        summary(anon),
        summary(hwm),
        summary(threads),
        server.requests().len()
    );
    for (_, k) in &running_ones {
        k.signal(libc::SIGTERM);
    }
    for (_, mut k) in running_ones {
        k.wait(T);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => latency(args[1].parse().unwrap()),
        Some("quiet") => quiet(args[1].parse().unwrap(), &args[2]),
        Some("watchers") => watchers(args[1].parse().unwrap()),
        _ => {
            eprintln!("usage: apibench latency RUNS | quiet SECONDS WATCH_TIMEOUT | watchers N");
            std::process::exit(2);
        }
    }
}
