//! The watcher thread: list our pod, watch it from the list's
//! resourceVersion, and hand every snapshot to the event loop.
//!
//! It never gives up. Connection errors, 5xx, malformed or oversized
//! answers back off exponentially (with jitter, capped at 30 s) and relist;
//! an expired resourceVersion (410, as an HTTP status or as an ERROR event
//! inside a 200 stream) relists at once; a clean end of the stream re-watches
//! from the last resourceVersion, which bookmarks keep fresh. Whether a
//! refusal (401/403) is fatal is the coordinator's decision, not ours.

use crate::coordinator::Event;
use crate::kube::{ApiError, Client, Target, WatchEvent};
use crate::runtime::Notifier;
use log::Level;
use std::time::{Duration, Instant, SystemTime};

/// How long a watch request asks the server to keep the stream open.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(300);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The same kind of failure is logged at its level at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Starts the watcher thread. Call only after the signals are blocked.
pub fn start(target: Target, notifier: Notifier, watch_timeout: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("watcher".into())
        .spawn(move || {
            Watcher::new(target, notifier, watch_timeout).run();
        })?;
    Ok(())
}

/// A small xorshift generator for jitter; no cryptographic use.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Jitter(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// A factor in [low, 1.0].
    fn factor(&mut self, low: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + (1.0 - low) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Exponential backoff with jitter: 250 ms, 500 ms, 1 s ... up to 30 s,
/// each drawn from [d/2, d] so that many pods do not retry in step.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn delay(&mut self, jitter: &mut Jitter) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        d.mul_f64(jitter.factor(0.5))
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// Kinds of failure, each with its own log throttle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unauthorized,
    Forbidden,
    NotFound,
    Credentials,
    Other,
}

struct Watcher {
    target: Target,
    notifier: Notifier,
    watch_timeout: Duration,
    backoff: Backoff,
    jitter: Jitter,
    last_logged: Vec<(Kind, Instant)>,
}

/// What ended a watch.
enum Next {
    Relist,
    Stop,
}

impl Watcher {
    fn new(target: Target, notifier: Notifier, watch_timeout: Duration) -> Watcher {
        Watcher {
            target,
            notifier,
            watch_timeout,
            backoff: Backoff {
                next: BACKOFF_START,
            },
            jitter: Jitter::new(),
            last_logged: Vec::new(),
        }
    }

    /// The read timeout restarts on every read; bookmarks arrive about once a
    /// minute, so 90 s of silence means the connection is dead.
    fn read_timeout(&self) -> Duration {
        (self.watch_timeout * 2 + Duration::from_secs(2)).min(Duration::from_secs(90))
    }

    fn run(mut self) {
        log::info!(
            "watching pod {:?} in namespace {:?} through {}",
            self.target.pod.value,
            self.target.namespace.value,
            self.target.server
        );
        let client = loop {
            match Client::new(self.target.clone(), self.read_timeout()) {
                Ok(c) => break c,
                Err(e) => {
                    if let Next::Stop = self.failed(&e) {
                        return;
                    }
                }
            }
        };
        loop {
            let next = match client.list() {
                Ok((pod, rv)) => {
                    self.backoff.reset();
                    if !self.notifier.send(Event::Pod(Box::new(pod))) {
                        return;
                    }
                    self.watch(&client, rv)
                }
                Err(e) => self.failed(&e),
            };
            if let Next::Stop = next {
                return;
            }
        }
    }

    /// Watches from `rv` until a relist is needed.
    fn watch(&mut self, client: &Client, mut rv: String) -> Next {
        loop {
            let timeout = self
                .watch_timeout
                .mul_f64(self.jitter.factor(0.9))
                .as_secs()
                .max(1);
            let opened = Instant::now();
            let mut watch = match client.watch(&rv, timeout) {
                Ok(w) => w,
                Err(ApiError::Status { code: 410, .. }) => {
                    log::info!("resourceVersion {rv} has expired; listing the pod again");
                    return Next::Relist;
                }
                Err(e) => return self.failed(&e),
            };
            let mut progressed = false;
            loop {
                match watch.next_event() {
                    Ok(None) => break,
                    Ok(Some(WatchEvent::Pod { pod, deleted })) => {
                        if deleted {
                            log::warn!("pod {:?} was deleted", self.target.pod.value);
                        }
                        rv = pod.metadata.resource_version.clone();
                        progressed = true;
                        self.backoff.reset();
                        if !self.notifier.send(Event::Pod(pod)) {
                            return Next::Stop;
                        }
                    }
                    Ok(Some(WatchEvent::Bookmark { resource_version })) => {
                        rv = resource_version;
                        progressed = true;
                    }
                    Ok(Some(WatchEvent::Error {
                        code: 410, message, ..
                    })) => {
                        log::info!("watch expired ({message}); listing the pod again");
                        return Next::Relist;
                    }
                    Ok(Some(WatchEvent::Error {
                        code,
                        reason,
                        message,
                    })) => {
                        return self.failed(&ApiError::Status {
                            code,
                            reason,
                            message,
                        });
                    }
                    Err(e) => return self.failed(&e),
                }
            }
            log::debug!(
                "watch ended after {:?}; watching again from {rv}",
                opened.elapsed()
            );
            // A server that ends every watch at once must not get a request storm.
            if !progressed && opened.elapsed() < Duration::from_secs(1) {
                self.pause();
            }
        }
    }

    /// Logs a failure (throttled), tells the coordinator about refusals,
    /// and sleeps the backoff. Afterwards the caller relists.
    fn failed(&mut self, e: &ApiError) -> Next {
        let (kind, level, message) = self.describe(e);
        let now = Instant::now();
        let due = match self.last_logged.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, at)) if now.duration_since(*at) < LOG_EVERY => false,
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                self.last_logged.push((kind, now));
                true
            }
        };
        log::log!(if due { level } else { Level::Debug }, "{message}");
        if kind != Kind::Other && !self.notifier.send(Event::ApiRefused(e.to_string())) {
            return Next::Stop;
        }
        self.pause();
        Next::Relist
    }

    fn pause(&mut self) {
        let delay = self.backoff.delay(&mut self.jitter);
        log::debug!("retrying in {delay:?}");
        std::thread::sleep(delay);
    }

    fn describe(&self, e: &ApiError) -> (Kind, Level, String) {
        let (pod, ns) = (&self.target.pod.value, &self.target.namespace.value);
        match e {
            ApiError::Status { code: 401, .. } => (
                Kind::Unauthorized,
                Level::Warn,
                format!("the API server rejected the service-account token ({e}); it is re-read for every request, retrying"),
            ),
            ApiError::Status { code: 403, message, .. } => (
                Kind::Forbidden,
                Level::Error,
                format!("the API server refused access ({e}).\n{}", forbidden_hint(&self.target, message)),
            ),
            ApiError::PodNotFound => (
                Kind::NotFound,
                Level::Error,
                format!(
                    "pod {pod:?} not found in namespace {ns:?} (name from {}, namespace from {}): set KOORDINATOR_POD_NAME and KOORDINATOR_POD_NAMESPACE from the downward API (fieldRef: metadata.name / metadata.namespace)",
                    self.target.pod.source, self.target.namespace.source
                ),
            ),
            ApiError::Credentials(_) => (Kind::Credentials, Level::Error, e.to_string()),
            ApiError::Status { .. } | ApiError::Transport(_) | ApiError::Malformed(_) => {
                (Kind::Other, Level::Warn, format!("API request to {} failed: {e}; retrying", self.target.server))
            }
        }
    }
}

/// What to do about a 403: the Role needed, and where the pod name came
/// from, since a wrong name is refused under a `resourceNames` Role too.
pub fn forbidden_hint(target: &Target, message: &str) -> String {
    format!(
        "{}\nThe pod name {:?} came from {}; if this pod is called otherwise, set KOORDINATOR_POD_NAME from the downward API (fieldRef: metadata.name).",
        rbac_hint(&target.pod.value, &target.namespace.value, message),
        target.pod.value,
        target.pod.source
    )
}

/// The Role and RoleBinding that grant koordinator what it needs, filled in
/// with the service account the API server named in its 403 message.
pub fn rbac_hint(pod: &str, namespace: &str, message: &str) -> String {
    let account = message
        .split("system:serviceaccount:")
        .nth(1)
        .and_then(|rest| rest.split(['"', ' ', '\'']).next())
        .and_then(|full| full.split_once(':'))
        .map_or("default", |(_, name)| name);
    format!(
        "koordinator needs get, list and watch on its own pod. Grant them with (least privilege; for Jobs and \
         other generated pod names, leave out resourceNames):
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: koordinator
  namespace: {namespace}
rules:
- apiGroups: [\"\"]
  resources: [\"pods\"]
  resourceNames: [\"{pod}\"]
  verbs: [\"get\", \"list\", \"watch\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: koordinator
  namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: koordinator
subjects:
- kind: ServiceAccount
  name: {account}
  namespace: {namespace}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut jitter = Jitter::new();
        let mut b = Backoff {
            next: BACKOFF_START,
        };
        let mut last_ceiling = Duration::ZERO;
        for _ in 0..12 {
            let ceiling = b.next;
            let d = b.delay(&mut jitter);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            assert!(ceiling >= last_ceiling && ceiling <= BACKOFF_CAP);
            last_ceiling = ceiling;
        }
        assert_eq!(last_ceiling, BACKOFF_CAP);
        b.reset();
        assert!(b.delay(&mut jitter) <= BACKOFF_START);
    }

    #[test]
    fn the_rbac_hint_names_the_service_account_from_the_403() {
        let message = r#"pods is forbidden: User "system:serviceaccount:jobs:runner" cannot list resource "pods" in API group "" in the namespace "jobs""#;
        let hint = rbac_hint("job-x", "jobs", message);
        assert!(hint.contains("resourceNames: [\"job-x\"]"));
        assert!(hint.contains("- kind: ServiceAccount\n  name: runner\n  namespace: jobs"));
        assert!(rbac_hint("p", "n", "forbidden").contains("name: default"));
    }
}
