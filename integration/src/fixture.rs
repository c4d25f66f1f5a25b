//! One pod on a fake API server, and koordinator processes running as its
//! containers: the few lines an API scenario test needs.

use crate::apiserver::{Access, ApiServer, PodFiles, Request};
use crate::harness::{Koordinator, Running};
use crate::pods::{self, PodBuilder};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const NAMESPACE: &str = "jobs";
pub const POD: &str = "job-x7k2p";
pub const TOKEN: &str = "token-1";

pub struct Fixture {
    pub server: ApiServer,
    pub files: PodFiles,
}

impl Fixture {
    /// A server holding `pod` (built for NAMESPACE/POD), with TOKEN allowed
    /// the least-privilege access (`resourceNames: [POD]`).
    pub fn new(pod: PodBuilder) -> Fixture {
        let server = ApiServer::start();
        server.set_token(TOKEN, Access::OnePod(POD.into()));
        server.create_pod(pod.build());
        let files = PodFiles::new(&server, NAMESPACE, TOKEN);
        Fixture { server, files }
    }

    /// The seed Job's pod: `main` waits for `proxy`; `proxy` stops after `main`.
    pub fn seed_job() -> Fixture {
        Fixture::new(
            pods::pod(NAMESPACE, POD)
                .container("main", Some(r#"{"startDeps":["proxy"]}"#))
                .container("proxy", Some(r#"{"stopDeps":["main"]}"#)),
        )
    }

    /// koordinator as one container of the pod, with `spec`, running `args`.
    pub fn koordinator(&self, spec: &str, args: &[&str]) -> Koordinator {
        self.container(Koordinator::plain(args), spec)
            .env("KOORDINATOR_POD_NAME", POD)
    }

    /// The pod's environment around a koordinator command line; no pod name
    /// is set, so it comes from the podinfo directory or the hostname.
    pub fn container(&self, k: Koordinator, spec: &str) -> Koordinator {
        k.env("KOORDINATOR_SPEC", spec)
            .env("KOORDINATOR_STATE_DIR", "")
            .env(
                "KOORDINATOR_SERVICEACCOUNT_DIR",
                self.files.serviceaccount(),
            )
            .env("KOORDINATOR_PODINFO_DIR", self.files.path("podinfo"))
            .env("KOORDINATOR_TERMINATION_LOG", self.termination_log())
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", self.server.port.to_string())
            .env("HTTPS_PROXY", "http://127.0.0.1:9") // must be ignored
    }

    pub fn termination_log(&self) -> PathBuf {
        self.files.path("termination-log")
    }

    pub fn termination_message(&self) -> String {
        crate::apiserver::read_or_empty(&self.termination_log())
    }

    /// Sets a container's status; returns when the server serves it.
    pub fn set(&self, container: &str, state: Value) -> Instant {
        self.server.modify_pod(NAMESPACE, POD, |pod| {
            pods::set_status(pod, container, state)
        });
        Instant::now()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// Waits until the server has seen `n` requests matching `which`.
    pub fn wait_for_requests(&self, n: usize, which: impl Fn(&Request) -> bool, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.requests().iter().filter(|r| which(r)).count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "fewer than {n} matching requests within {timeout:?}: {:#?}",
            self.requests()
        );
    }

    /// Waits until koordinator has a watch open (it has listed and is watching).
    pub fn wait_for_watch(&self, n: usize) {
        self.wait_for_requests(
            n,
            |r| r.is_watch() && r.status == 200,
            Duration::from_secs(20),
        );
        // The request is logged before the stream's first bytes go out.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The command most scenarios run: says it started, then sleeps.
pub const STARTED: &[&str] = &["sh", "-c", "echo started; exec sleep 1000"];

pub fn started_within(k: &mut Running, timeout: Duration) {
    k.expect_line("started", timeout);
}

/// Containers of one pod with no API access at all: no token, no API
/// server address, one shared state directory (SPEC §7).
pub struct LocalPod {
    pub dir: PathBuf,
}

impl Default for LocalPod {
    fn default() -> LocalPod {
        LocalPod::new()
    }
}

impl LocalPod {
    pub fn new() -> LocalPod {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("koordinator-local-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::create_dir(dir.join("state")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("state"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        LocalPod { dir }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The environment of container `name` around a koordinator command line.
    pub fn around(&self, k: Koordinator, name: &str, spec: &str) -> Koordinator {
        k.env("KOORDINATOR_SPEC", spec)
            .env("KOORDINATOR_STATE_DIR", self.state_dir())
            .env(
                "KOORDINATOR_SERVICEACCOUNT_DIR",
                self.dir.join("no-serviceaccount"),
            )
            .env(
                "KOORDINATOR_TERMINATION_LOG",
                self.dir.join("logs").join(name),
            )
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
    }

    /// Container `name` with `spec`, running `args` (koordinator not PID 1).
    pub fn container(&self, name: &str, spec: &str, args: &[&str]) -> Koordinator {
        self.around(Koordinator::plain(args), name, spec)
    }

    pub fn termination_message(&self, name: &str) -> String {
        crate::apiserver::read_or_empty(&self.dir.join("logs").join(name))
    }

    /// The record container `name` published, as text.
    pub fn record(&self, name: &str) -> String {
        crate::apiserver::read_or_empty(&self.state_dir().join(format!("{name}.json")))
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP endpoint on 127.0.0.1 that answers 503 until `ready_after`, then
/// 200; it serves until the test process ends. Returns its port.
pub fn readiness_endpoint(ready_after: Duration) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ready_at = Instant::now() + ready_after;
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let answer: &[u8] = if Instant::now() >= ready_at {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = (&stream).write_all(answer);
        }
    });
    port
}
