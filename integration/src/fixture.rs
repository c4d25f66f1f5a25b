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
        Koordinator::plain(args)
            .env("KOORDINATOR_SPEC", spec)
            .env("KOORDINATOR_POD_NAME", POD)
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
