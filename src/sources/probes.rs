//! The probe source: start dependencies on a local endpoint or file
//! (SPEC §7.1), tried every `period` until they pass.
//!
//! One small thread per probe: an attempt blocks for up to its `timeout`
//! (a connect, an HTTP answer), and blocking code on a thread of its own is
//! the simplest way to keep that off the event loop, so that signals,
//! reaping and other dependencies are never delayed. Probes exist only
//! before the start, and a spec has a handful at most; each thread ends
//! when its probe passes or koordinator exits.

use crate::client::http;
use crate::init::event_loop::Notifier;
use crate::rules::coordinator::Event;
use crate::rules::spec::{Probe, ProbeTarget};
use std::io;
use std::time::{Duration, Instant};

/// Starts one thread per probe; each reports every attempt's result.
pub fn start(probes: Vec<Probe>, notifier: &Notifier) -> io::Result<()> {
    for (index, probe) in probes.into_iter().enumerate() {
        let notifier = notifier.clone();
        std::thread::Builder::new()
            .name(format!("probe-{index}"))
            .stack_size(128 << 10)
            .spawn(move || loop {
                let started = Instant::now();
                let result = attempt(&probe.target, probe.timeout);
                let passed = result.is_ok();
                if !notifier.send(Event::Probe(index, result)) || passed {
                    return;
                }
                std::thread::sleep(probe.period.saturating_sub(started.elapsed()));
            })?;
    }
    Ok(())
}

/// One attempt; `Err` says why it failed, in words for the wait log.
pub fn attempt(target: &ProbeTarget, timeout: Duration) -> Result<(), String> {
    match target {
        ProbeTarget::Tcp { host, port } => http::connect(host, *port, Instant::now() + timeout)
            .map(drop)
            .map_err(|e| describe(&e, timeout)),
        ProbeTarget::Http { host, port, path } => {
            match http::plain_request("GET", host, *port, path, timeout) {
                Ok(status) if (200..300).contains(&status) => Ok(()),
                Ok(status) if (300..400).contains(&status) => {
                    Err(format!("HTTP {status} (redirects are not followed)"))
                }
                Ok(status) => Err(format!("HTTP {status}")),
                Err(e) => Err(describe(&e, timeout)),
            }
        }
        ProbeTarget::File(path) => match std::fs::symlink_metadata(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err("does not exist".into()),
            Err(e) => Err(describe(&e, timeout)),
        },
    }
}

/// An I/O error in a few words: `connection refused`, `timed out after 1s`.
pub fn describe(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("timed out after {}", humantime::format_duration(timeout))
        }
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    const T: Duration = Duration::from_secs(2);

    fn serve(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = r.get_mut().write_all(answer.as_bytes());
        });
        port
    }

    fn http(port: u16) -> ProbeTarget {
        ProbeTarget::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/ready".into(),
        }
    }

    #[test]
    fn http_probes_pass_on_2xx_only() {
        assert_eq!(
            attempt(&http(serve("HTTP/1.1 204 No Content\r\n\r\n")), T),
            Ok(())
        );
        assert_eq!(
            attempt(
                &http(serve(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                )),
                T
            ),
            Err("HTTP 503".into())
        );
        assert_eq!(
            attempt(
                &http(serve("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n")),
                T
            ),
            Err("HTTP 302 (redirects are not followed)".into())
        );
        assert!(attempt(&http(serve("garbage\r\n\r\n")), T)
            .unwrap_err()
            .contains("not an HTTP/1.x response"));
    }

    #[test]
    fn tcp_and_file_probes_say_why_they_fail() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tcp = |port| ProbeTarget::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(attempt(&tcp(closed), T), Err("connection refused".into()));
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(attempt(&tcp(open.local_addr().unwrap().port()), T), Ok(()));
        assert_eq!(
            attempt(&ProbeTarget::File("/nonexistent/koordinator".into()), T),
            Err("does not exist".into())
        );
        assert_eq!(attempt(&ProbeTarget::File("/".into()), T), Ok(()));
    }
}
