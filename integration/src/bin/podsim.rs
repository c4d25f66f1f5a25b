//! podsim: run a Pod or Job manifest locally, as a kubelet would, against a
//! fake API server. See the README, "Trying it without a cluster".
//!
//! podsim [OPTIONS] MANIFEST.yaml
//!   --delete-after DURATION   delete the pod after DURATION (SIGTERM, then
//!                             SIGKILL after terminationGracePeriodSeconds)
//!   --expect PHASE            exit 0 only if the pod ends Succeeded/Failed
//!                             (default: the manifest's expect-phase
//!                             annotation, else Succeeded)
//!   --koordinator PATH        the koordinator binary images map to
//!   --no-pid-namespaces       run containers as plain processes even as root
//!   -q                        hide the containers' output
//! podsim standin http-quit PORT | http-ready PORT DELAY | stamp [SECONDS]
//!                             small stand-in programs

use koordinator_integration::podsim::{manifest, Options, Sim};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

fn usage(message: &str) -> ! {
    eprintln!("podsim: {message}\nusage: podsim [--delete-after DURATION] [--expect PHASE] [--koordinator PATH] [--no-pid-namespaces] [-q] MANIFEST.yaml");
    std::process::exit(2);
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text)
        .unwrap_or_else(|e| usage(&format!("{text:?} is not a duration: {e}")))
}

fn standin(args: &[String]) -> ! {
    match args.first().map(String::as_str) {
        // A sidecar that stops when asked over HTTP, like Envoy's /quitquitquit.
        Some("http-quit") => {
            let port: u16 = args
                .get(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| usage("http-quit PORT"));
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
                eprintln!("cannot listen on {port}: {e}");
                std::process::exit(1)
            });
            println!("listening on 127.0.0.1:{port}");
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let quit = line
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|p| p.starts_with("/quitquitquit"));
                let mut out = &stream;
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if quit {
                    println!(
                        "{} /quitquitquit received; exiting",
                        line.split_whitespace().next().unwrap_or("?")
                    );
                    std::process::exit(0);
                }
            }
            std::process::exit(1)
        }
        // A proxy whose readiness endpoint answers 503 for DELAY, then 200.
        Some("http-ready") => {
            let port: u16 = args
                .get(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| usage("http-ready PORT DELAY"));
            let ready_at =
                std::time::Instant::now() + args.get(2).map_or(Duration::ZERO, |d| duration(d));
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
                eprintln!("cannot listen on {port}: {e}");
                std::process::exit(1)
            });
            println!("proxy listening on 127.0.0.1:{port}");
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let answer: &[u8] = if std::time::Instant::now() >= ready_at {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = (&stream).write_all(answer);
            }
            std::process::exit(1)
        }
        // Prints when it was exec'd, relative to podsim's start.
        Some("stamp") => {
            let t0: u64 = std::env::var("PODSIM_T0_NS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let now = koordinator_integration::harness::monotonic_ns();
            println!("exec +{:.4}s", now.saturating_sub(t0) as f64 / 1e9);
            if let Some(s) = args.get(1) {
                std::thread::sleep(duration(s));
            }
            std::process::exit(0)
        }
        _ => usage("standin http-quit PORT | http-ready PORT DELAY | stamp [SECONDS]"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "standin") {
        standin(&args[1..]);
    }
    let mut delete_after = None;
    let mut expect = None;
    let mut koordinator = None;
    let mut pid_namespaces = koordinator_integration::harness::is_root();
    let mut show_output = true;
    let mut file = None;
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .unwrap_or_else(|| usage(&format!("{} needs a value", args[i])))
        };
        match args[i].as_str() {
            "--delete-after" => {
                delete_after = Some(duration(&value(i)));
                i += 1;
            }
            "--expect" => {
                expect = Some(value(i));
                i += 1;
            }
            "--koordinator" => {
                koordinator = Some(PathBuf::from(value(i)));
                i += 1;
            }
            "--no-pid-namespaces" => pid_namespaces = false,
            "-q" => show_output = false,
            a if a.starts_with('-') => usage(&format!("unknown option {a}")),
            a => file = Some(PathBuf::from(a)),
        }
        i += 1;
    }
    let file = file.unwrap_or_else(|| usage("no manifest given"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| usage(&format!("{}: {e}", file.display())));
    let m = manifest::parse(&text).unwrap_or_else(|e| {
        eprintln!("podsim: {}: {e}", file.display());
        std::process::exit(2)
    });
    let delete_after = delete_after.or_else(|| m.annotation("delete-after").map(duration));
    let expect = expect
        .or_else(|| m.annotation("expect-phase").map(str::to_string))
        .unwrap_or_else(|| "Succeeded".into());
    let koordinator = koordinator.unwrap_or_else(koordinator_integration::harness::koordinator_bin);
    let standin = std::env::current_exe().expect("podsim's own path");
    let opts = Options {
        koordinator,
        standin,
        delete_after,
        pid_namespaces,
        show_output,
    };
    let sim = Sim::new(m, opts).unwrap_or_else(|e| {
        eprintln!("podsim: cannot set up the pod: {e}");
        std::process::exit(1)
    });
    let outcome = sim.run();
    println!("api requests served: {}", outcome.requests);
    if outcome.phase != expect {
        println!(
            "expected the pod to end {expect}, it ended {}",
            outcome.phase
        );
        std::process::exit(1);
    }
}
