//! The API source: a thread that lists our pod, watches it from the list's
//! resourceVersion, and hands every snapshot of it to the event loop.
//!
//! A thread, because TLS and HTTP are blocking code here and must never
//! delay a signal or a reap on the loop; it only ever sends events.
//!
//! It never gives up. Connection errors, 5xx, malformed or oversized answers
//! back off exponentially (with jitter, capped at 30 s; longer when the
//! server sends `Retry-After`) and relist; an expired resourceVersion (410,
//! as an HTTP status or as an ERROR event inside a 200 stream) relists; a
//! clean end of the stream re-watches from the last resourceVersion, which
//! bookmarks keep fresh. A silent watch is healthy until its own deadline:
//! bookmarks arrive only when something changed (a v1.20 API server sends
//! none for a quiet pod), and TCP keepalive finds a dead peer. Whether a
//! refusal (401/403) is fatal is the coordinator's decision, not ours.

use crate::client::http::printable;
use crate::client::kube::{ApiError, Client, Found, Target, WatchEvent};
use crate::init::event_loop::Notifier;
use crate::rules::coordinator::Event;
use crate::rules::pod::Pod;
use log::Level;
use std::time::{Duration, Instant, SystemTime};

/// How long a watch request lasts at most; each draws its `timeoutSeconds`
/// from [half, all] of it (as client-go's reflector does), so that pods
/// started together do not renew together. 10 minutes: about 8 watches and
/// 1 list an hour for a quiet pod.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(600);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const RETRY_AFTER_CAP: u64 = 60;
/// The same kind of failure is logged at its level at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Starts the watcher thread. Call only after the signals are blocked.
pub fn start(
    target: Target,
    spec_text: String,
    notifier: Notifier,
    watch_timeout: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("api".into())
        .stack_size(256 << 10)
        .spawn(move || Watcher::new(target, spec_text, notifier, watch_timeout).run())?;
    Ok(())
}

/// A list's overall deadline: 30 s, or less for short watches (tests).
pub fn list_timeout(watch_timeout: Duration) -> Duration {
    (watch_timeout / 20).clamp(Duration::from_secs(5), Duration::from_secs(30))
}

/// A small xorshift generator for jitter; no cryptographic use.
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Jitter(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// A factor in [low, high].
    pub fn factor(&mut self, low: f64, high: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + (high - low) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

impl Default for Jitter {
    fn default() -> Jitter {
        Jitter::new()
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
        d.mul_f64(jitter.factor(0.5, 1.0))
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
    Foreign,
    Other,
}

struct Watcher {
    client: Client,
    spec_text: String,
    notifier: Notifier,
    watch_timeout: Duration,
    backoff: Backoff,
    jitter: Jitter,
    last_logged: Vec<(Kind, Instant)>,
    /// The pod's uid, once seen: a pod re-created under the same name is another pod.
    uid: Option<String>,
    /// Whether the hostname was already tried as a pod of this namespace.
    resolved: bool,
}

/// What ended a watch.
enum Next {
    Relist,
    Stop,
}

impl Watcher {
    fn new(
        target: Target,
        spec_text: String,
        notifier: Notifier,
        watch_timeout: Duration,
    ) -> Watcher {
        Watcher {
            client: Client::new(target, list_timeout(watch_timeout)),
            spec_text,
            notifier,
            watch_timeout,
            backoff: Backoff {
                next: BACKOFF_START,
            },
            jitter: Jitter::new(),
            last_logged: Vec::new(),
            uid: None,
            resolved: false,
        }
    }

    fn target(&self) -> &Target {
        self.client.target()
    }

    fn run(mut self) {
        log::info!(
            "watching pod {:?} in namespace {:?} through {}",
            self.target().pod.value,
            self.target().namespace.value,
            self.target().server
        );
        loop {
            let next = match self.list() {
                Ok((pod, rv)) => {
                    self.backoff.reset();
                    if !self.notifier.send(Event::Pod(Box::new(pod))) {
                        return;
                    }
                    self.watch(rv)
                }
                Err(e) => self.failed(&e),
            };
            if let Next::Stop = next {
                return;
            }
        }
    }

    /// Lists our pod; when the hostname turns out not to be a pod of the
    /// namespace, finds the real one first (once).
    fn list(&mut self) -> Result<(Pod, String), ApiError> {
        match self.list_once() {
            Err(ApiError::PodNotFound) if self.target().pod.from_hostname() && !self.resolved => {
                self.resolved = true;
                self.resolve_hostname();
                self.list_once()
            }
            other => other,
        }
    }

    /// Lists our pod, picking it out of whatever the server returned.
    fn list_once(&mut self) -> Result<(Pod, String), ApiError> {
        let (pods, rv) = self.client.list()?;
        let mut found = None;
        for pod in pods {
            if self.ours(&pod) && found.is_none() {
                found = Some(pod);
            }
        }
        let pod = found.ok_or(ApiError::PodNotFound)?;
        let rv = if rv.is_empty() {
            pod.metadata.resource_version.clone()
        } else {
            rv
        };
        Ok((pod, rv))
    }

    /// Whether an object the server sent is our pod. A proxy or server that
    /// ignores the field selector must not make us act on another pod.
    fn ours(&mut self, pod: &Pod) -> bool {
        let (name, namespace) = (&self.target().pod.value, &self.target().namespace.value);
        let m = &pod.metadata;
        let why = if m.name != *name {
            format!("pod {:?}, not {name:?}", printable(&m.name))
        } else if !m.namespace.is_empty() && m.namespace != *namespace {
            format!("namespace {:?}, not {namespace:?}", printable(&m.namespace))
        } else {
            match &self.uid {
                Some(uid) if !m.uid.is_empty() && m.uid != *uid => format!(
                    "uid {:?}: pod {name:?} was deleted and created again, and this container belongs to the old one (uid {uid:?})",
                    printable(&m.uid)
                ),
                _ => {
                    if self.uid.is_none() && !m.uid.is_empty() {
                        self.uid = Some(m.uid.clone());
                    }
                    return true;
                }
            }
        };
        let message = format!("ignoring an object from the API server for {why}");
        self.log_throttled(Kind::Foreign, Level::Warn, &message);
        false
    }

    /// The hostname is not a pod of this namespace: find the pod that is
    /// ours (a container of it holds this exact spec) when the Role allows
    /// listing the namespace, else say what to set.
    fn resolve_hostname(&mut self) {
        let hostname = self.target().pod.value.clone();
        let why = if hostname.len() >= 60 {
            format!(
                "a hostname of {} characters is probably a pod name that the kubelet cut at 63",
                hostname.len()
            )
        } else {
            "the hostname is not the pod's name (a hostNetwork pod has the node's hostname, and spec.hostname or spec.subdomain change it)".into()
        };
        let mut candidates = Vec::new();
        let spec_text = self.spec_text.clone();
        let listed = self.client.list_namespace(|pod| {
            let s = &pod.spec;
            let named = pod.metadata.name.starts_with(&hostname)
                || (s.host_network == Some(true)
                    && s.node_name.as_deref() == Some(hostname.as_str()));
            if named && !pod.is_finished() && !pod.containers_with_spec(&spec_text).is_empty() {
                candidates.push(pod.metadata.name.clone());
            }
        });
        let fix = "set KOORDINATOR_POD_NAME from the downward API (env: [{name: KOORDINATOR_POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}])";
        match (listed, candidates.as_slice()) {
            (Ok(()), [one]) => {
                log::info!("no pod is called {hostname:?} ({why}); pod {one:?} holds this container's spec, so it is this pod");
                self.client.set_pod(Found {
                    value: one.clone(),
                    source: format!("the pod of this namespace whose name starts with the hostname {hostname:?} and that holds this spec"),
                });
            }
            (Ok(()), []) => log::error!(
                "pod {hostname:?} (the hostname) not found in namespace {:?}: {why}, and no running pod of the namespace matches it and holds this spec; {fix}",
                self.target().namespace.value
            ),
            (Ok(()), many) => log::error!(
                "pod {hostname:?} (the hostname) not found: {why}, and several pods match it ({}); {fix}",
                many.join(", ")
            ),
            (Err(e), _) => log::error!(
                "pod {hostname:?} (the hostname) not found: {why}; listing the namespace to find the real pod failed ({e}); {fix}"
            ),
        }
    }

    /// One watch request's `timeoutSeconds`.
    fn next_timeout(&mut self) -> u64 {
        let f = self.jitter.factor(0.5, 1.0);
        self.watch_timeout.mul_f64(f).as_secs().max(1)
    }

    /// Watches from `rv` until a relist is needed.
    fn watch(&mut self, mut rv: String) -> Next {
        loop {
            let timeout = self.next_timeout();
            let opened = Instant::now();
            let mut watch = match self.client.watch(&rv, timeout) {
                Ok(w) => w,
                Err(ApiError::Status { code: 410, .. }) => {
                    log::info!("resourceVersion {rv} has expired; listing the pod again");
                    self.pause_briefly();
                    return Next::Relist;
                }
                Err(e) => return self.failed(&e),
            };
            let mut progressed = false;
            loop {
                match watch.next_event() {
                    Ok(None) => break,
                    Ok(Some(WatchEvent::Pod { pod, deleted })) => {
                        if !self.ours(&pod) {
                            continue;
                        }
                        if deleted {
                            log::warn!("pod {:?} was deleted", self.target().pod.value);
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
                        log::info!("the watch expired ({message}); listing the pod again");
                        self.pause_briefly();
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
                            retry_after: None,
                        });
                    }
                    Err(e) => return self.failed(&e),
                }
            }
            self.client.finish(watch);
            log::debug!(
                "the watch ended after {:?} (timeoutSeconds={timeout}); watching again from {rv}",
                opened.elapsed()
            );
            // A server that ends every watch at once must not get a request storm.
            if !progressed && opened.elapsed() < Duration::from_secs(1) {
                let delay = self.backoff.delay(&mut self.jitter);
                std::thread::sleep(delay);
            }
        }
    }

    fn log_throttled(&mut self, kind: Kind, level: Level, message: &str) {
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
    }

    /// Logs a failure (throttled), tells the coordinator about refusals,
    /// and sleeps the backoff, or what `Retry-After` asked for. Afterwards
    /// the caller relists.
    fn failed(&mut self, e: &ApiError) -> Next {
        let (kind, level, message) = self.describe(e);
        self.log_throttled(kind, level, &message);
        let refusal = matches!(
            kind,
            Kind::Unauthorized | Kind::Forbidden | Kind::NotFound | Kind::Credentials
        );
        if refusal && !self.notifier.send(Event::ApiRefused(e.to_string())) {
            return Next::Stop;
        }
        let delay = match e {
            ApiError::Status {
                retry_after: Some(seconds),
                ..
            } => {
                // Never sooner than asked; a little later, so that the pods
                // told the same do not come back in one burst.
                let asked = Duration::from_secs((*seconds).clamp(1, RETRY_AFTER_CAP));
                asked.mul_f64(self.jitter.factor(1.0, 1.25))
            }
            _ => self.backoff.delay(&mut self.jitter),
        };
        log::debug!("retrying in {delay:?}");
        std::thread::sleep(delay);
        Next::Relist
    }

    /// Up to a second, before a relist after a 410: every pod watching
    /// through a restarted API server gets one at the same moment.
    fn pause_briefly(&mut self) {
        std::thread::sleep(Duration::from_secs(1).mul_f64(self.jitter.factor(0.0, 1.0)));
    }

    fn describe(&self, e: &ApiError) -> (Kind, Level, String) {
        let t = self.target();
        let (pod, ns) = (&t.pod.value, &t.namespace.value);
        match e {
            ApiError::Status { code: 401, .. } => (
                Kind::Unauthorized,
                Level::Warn,
                format!("the API server rejected the service-account token ({e}); it is re-read for every request, retrying"),
            ),
            ApiError::Status { code: 403, message, .. } => (
                Kind::Forbidden,
                Level::Error,
                format!("the API server refused access ({e}).\n{}", forbidden_hint(t, message)),
            ),
            ApiError::PodNotFound => (
                Kind::NotFound,
                Level::Error,
                format!(
                    "pod {pod:?} not found in namespace {ns:?} (name from {}, namespace from {}): set KOORDINATOR_POD_NAME and KOORDINATOR_POD_NAMESPACE from the downward API (fieldRef: metadata.name / metadata.namespace)",
                    t.pod.source, t.namespace.source
                ),
            ),
            ApiError::Credentials(_) => (Kind::Credentials, Level::Error, e.to_string()),
            ApiError::Status { code, retry_after: Some(s), .. } => (
                Kind::Other,
                Level::Warn,
                format!("the API server is busy ({e}) and asked to retry in {s}s (HTTP {code}); waiting"),
            ),
            ApiError::Status { .. } | ApiError::Transport(_) | ApiError::Malformed(_) => (
                Kind::Other,
                Level::Warn,
                format!("API request to {} failed: {e}; retrying", t.server),
            ),
        }
    }
}

/// What to do about a 403: the Role needed, and where the pod name came
/// from, since a wrong name is refused under a `resourceNames` Role too.
pub fn forbidden_hint(target: &Target, message: &str) -> String {
    let mut hint = rbac_hint(&target.pod.value, &target.namespace.value, message);
    hint.push_str(&format!(
        "\nThe pod name {:?} came from {}; if this pod is called otherwise, set KOORDINATOR_POD_NAME from the downward API (fieldRef: metadata.name).",
        target.pod.value, target.pod.source
    ));
    if target.pod.from_hostname() {
        hint.push_str(" A pod's hostname is not always its name: the kubelet cuts it at 63 characters, and a hostNetwork pod has the node's.");
    }
    hint
}

/// A DNS-1123 label: what namespaces are.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: what service account names are.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

/// The service account named in a 403 message
/// (`User "system:serviceaccount:NS:NAME" cannot list ...`), if it is one.
fn service_account(message: &str) -> Option<(&str, &str)> {
    let rest = message.split("system:serviceaccount:").nth(1)?;
    let full = rest.split(['"', ' ', '\'', '\\']).next()?;
    let (ns, name) = full.split_once(':')?;
    (dns_label(ns) && dns_subdomain(name)).then_some((ns, name))
}

/// The Role and RoleBinding that grant koordinator what it needs: list and
/// watch on pods (it never gets, creates or changes anything). Built only
/// from values that parse as what they should be; a message from the server
/// is never pasted in.
pub fn rbac_hint(pod: &str, namespace: &str, message: &str) -> String {
    let ns = if dns_label(namespace) {
        namespace
    } else {
        "<namespace>"
    };
    let account = match service_account(message) {
        Some((account_ns, name)) if account_ns == namespace => name,
        _ => "<service-account>",
    };
    let role = if account.starts_with('<') {
        "koordinator-pod-watcher".to_string()
    } else {
        format!("koordinator-{account}")
    };
    let names = if dns_subdomain(pod) {
        format!("\n  # least privilege for a pod with a fixed name (not for Jobs): resourceNames: [\"{pod}\"]")
    } else {
        String::new()
    };
    format!(
        "koordinator needs list and watch on pods in namespace {ns} (nothing else). Grant them with this Role and RoleBinding; \
         the Role is named after the service account so that applying it cannot replace a broader Role of yours (if one already binds this account, add the rule to it instead):
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {role}
  namespace: {ns}
rules:
- apiGroups: [\"\"]
  resources: [\"pods\"]
  verbs: [\"list\", \"watch\"]{names}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {role}
  namespace: {ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {role}
subjects:
- kind: ServiceAccount
  name: {account}
  namespace: {ns}"
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
    fn jitter_stays_in_its_range() {
        let mut j = Jitter::new();
        for _ in 0..1000 {
            let f = j.factor(0.5, 1.0);
            assert!((0.5..=1.0).contains(&f), "{f}");
        }
    }

    #[test]
    fn the_rbac_hint_names_the_service_account_from_the_403() {
        let message = r#"pods is forbidden: User "system:serviceaccount:jobs:runner" cannot list resource "pods" in API group "" in the namespace "jobs""#;
        let hint = rbac_hint("job-x", "jobs", message);
        assert!(
            hint.contains("verbs: [\"list\", \"watch\"]\n  # least privilege"),
            "{hint}"
        );
        assert!(hint.contains("resourceNames: [\"job-x\"]"));
        assert!(hint.contains("  name: koordinator-runner\n  namespace: jobs"));
        assert!(hint.contains("- kind: ServiceAccount\n  name: runner\n  namespace: jobs"));
        assert!(!hint.contains("\"get\""));
    }

    #[test]
    fn the_rbac_hint_pastes_nothing_that_does_not_parse() {
        // A proxy that echoes a token, or a message with odd characters.
        let hint = rbac_hint(
            "p",
            "n",
            r#"User "system:serviceaccount:n:eyJhbGciOi.JSUzI1NiJ9_secret" cannot list"#,
        );
        assert!(hint.contains("name: <service-account>"), "{hint}");
        assert!(!hint.contains("eyJ"));
        let hint = rbac_hint("p", "n", r#"User "system:serviceaccount:other:x" cannot"#);
        assert!(
            hint.contains("name: <service-account>"),
            "another namespace's account"
        );
        let hint = rbac_hint("p", "Bad NS", "forbidden");
        assert!(hint.contains("namespace: <namespace>"));
        assert!(hint.contains("name: koordinator-pod-watcher"));
    }
}
