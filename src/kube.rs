//! Who we are (pod name, namespace) and how to reach the API server.
//!
//! One client for one pod: it lists the pod by `fieldSelector=metadata.name`
//! and watches it from the list's resourceVersion. That is all the
//! least-privilege Role allows, and all koordinator needs.

use crate::pod::Pod;
use serde::Deserialize;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};

pub const DEFAULT_PODINFO_DIR: &str = "/etc/podinfo";
pub const DEFAULT_SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// A watch line or list body larger than this is treated as a failed watch.
pub const MAX_LINE: usize = 8 << 20;

/// A value and where it came from, for `--check` and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub source: String,
}

/// Everything needed to talk to the API server about our own pod.
#[derive(Clone, Debug)]
pub struct Target {
    pub pod: Found,
    pub namespace: Found,
    /// `https://host:port`, IPv6 hosts in brackets.
    pub server: String,
    pub token_path: PathBuf,
    pub ca_path: PathBuf,
}

/// Why the target could not be determined. A configuration error: exit 2.
#[derive(Debug, PartialEq, Eq)]
pub struct TargetError(pub String);

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The environment and file system as the target resolution sees them, so
/// the resolution order is testable without either.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn read(&self, path: &Path) -> Option<String>;
    fn hostname(&self) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn hostname(&self) -> Option<String> {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into buf.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
            return None;
        }
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8(buf[..end].to_vec()).ok()
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Target {
    pub fn from_env() -> Result<Target, TargetError> {
        Target::resolve(&ProcessEnvironment)
    }

    /// Resolves the target in the documented order (README, "Pod identity").
    pub fn resolve(env: &dyn Environment) -> Result<Target, TargetError> {
        let dir = |var: &str, default: &str| {
            PathBuf::from(non_empty(env.var(var)).unwrap_or_else(|| default.into()))
        };
        let podinfo = dir("KOORDINATOR_PODINFO_DIR", DEFAULT_PODINFO_DIR);
        let serviceaccount = dir("KOORDINATOR_SERVICEACCOUNT_DIR", DEFAULT_SERVICEACCOUNT_DIR);
        let from_var = |name: &str| {
            non_empty(env.var(name)).map(|value| Found {
                value,
                source: name.into(),
            })
        };
        let from_file = |path: PathBuf| {
            non_empty(env.read(&path)).map(|value| Found {
                value,
                source: path.display().to_string(),
            })
        };

        let pod = from_var("KOORDINATOR_POD_NAME")
            .or_else(|| from_file(podinfo.join("name")))
            .or_else(|| non_empty(env.hostname()).map(|value| Found { value, source: "the hostname".into() }))
            .ok_or_else(|| {
                TargetError("cannot tell which pod this is: set KOORDINATOR_POD_NAME from the downward API (fieldRef: metadata.name)".into())
            })?;
        let namespace = from_var("KOORDINATOR_POD_NAMESPACE")
            .or_else(|| from_file(podinfo.join("namespace")))
            .or_else(|| from_file(serviceaccount.join("namespace")))
            .ok_or_else(|| {
                TargetError(format!(
                    "cannot tell the pod's namespace: set KOORDINATOR_POD_NAMESPACE from the downward API (fieldRef: metadata.namespace), or mount the service-account token ({} has no namespace file)",
                    serviceaccount.display()
                ))
            })?;
        let host = non_empty(env.var("KUBERNETES_SERVICE_HOST")).ok_or_else(|| {
            TargetError("KUBERNETES_SERVICE_HOST is not set: koordinator needs the Kubernetes API for startDeps and stopDeps (is this running in a pod?)".into())
        })?;
        let port = non_empty(env.var("KUBERNETES_SERVICE_PORT")).unwrap_or_else(|| "443".into());
        if port.parse::<u16>().is_err() {
            return Err(TargetError(format!(
                "KUBERNETES_SERVICE_PORT={port:?} is not a port number"
            )));
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(Target {
            pod,
            namespace,
            server: format!("https://{host}:{port}"),
            token_path: serviceaccount.join("token"),
            ca_path: serviceaccount.join("ca.crt"),
        })
    }

    fn pods_url(&self) -> String {
        format!(
            "{}/api/v1/namespaces/{}/pods?fieldSelector=metadata.name%3D{}",
            self.server,
            encode(&self.namespace.value),
            encode(&self.pod.value)
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A failed API request, classified the way the watcher reacts to it.
#[derive(Debug)]
pub enum ApiError {
    /// No connection, TLS failure, timeout, broken stream: retry with backoff.
    Transport(String),
    /// The server answered with a non-2xx status (or an ERROR watch event).
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// The answer was not what the API promises: relist.
    Malformed(String),
    /// The list did not contain our pod.
    PodNotFound,
    /// The token or CA could not be read.
    Credentials(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Transport(e) => write!(f, "{e}"),
            ApiError::Status {
                code,
                reason,
                message,
            } => write!(f, "{code} {reason}: {message}"),
            ApiError::Malformed(e) => write!(f, "unexpected answer: {e}"),
            ApiError::PodNotFound => write!(f, "pod not found"),
            ApiError::Credentials(e) => write!(f, "{e}"),
        }
    }
}

/// The `Status` object the API server sends with errors.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Status {
    code: u16,
    reason: String,
    message: String,
}

#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Pod>,
}

#[derive(Default, Deserialize)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

/// One line of a watch stream.
#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// A decoded watch event.
#[derive(Debug)]
pub enum WatchEvent {
    /// ADDED, MODIFIED (or DELETED, with `deleted` set).
    Pod {
        pod: Box<Pod>,
        deleted: bool,
    },
    Bookmark {
        resource_version: String,
    },
    /// An ERROR event: a Status inside a 200 stream (410 Expired, most often).
    Error {
        code: u16,
        reason: String,
        message: String,
    },
}

pub struct Client {
    agent: ureq::Agent,
    target: Target,
}

/// An open watch: a chunked stream of JSON lines.
pub struct Watch {
    reader: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
}

impl Client {
    /// `read_timeout` bounds the silence on an open watch: set it above the
    /// watch's `timeoutSeconds`, since it restarts on every read.
    pub fn new(target: Target, read_timeout: Duration) -> Result<Client, ApiError> {
        let pem = std::fs::read(&target.ca_path).map_err(|e| {
            ApiError::Credentials(format!(
                "cannot read the cluster CA {}: {e} (is the service-account token mounted?)",
                target.ca_path.display()
            ))
        })?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(ApiError::Credentials(format!(
                "{} holds no PEM certificate",
                target.ca_path.display()
            )));
        }
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::new_with_certs(&certs))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = ureq::config::Config::builder()
            .tls_config(tls)
            // ureq reads proxy variables by default, and its NO_PROXY has no
            // CIDR support: a cluster-wide HTTPS_PROXY would capture 10.96.0.1.
            .proxy(None)
            .http_status_as_error(false)
            .https_only(true)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(read_timeout))
            .user_agent(format!("koordinator/{}", crate::VERSION))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            target,
        })
    }

    /// The bearer token, read afresh: projected tokens rotate.
    fn token(&self) -> Result<String, ApiError> {
        let token = std::fs::read_to_string(&self.target.token_path).map_err(|e| {
            ApiError::Credentials(format!(
                "cannot read the service-account token {}: {e} (is automountServiceAccountToken false?)",
                self.target.token_path.display()
            ))
        })?;
        Ok(token.trim().to_string())
    }

    fn get(&self, url: &str) -> Result<ureq::Body, ApiError> {
        let response = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token()?))
            .header("Accept", "application/json")
            .call()
            .map_err(|e| ApiError::Transport(describe(&e)))?;
        let code = response.status().as_u16();
        let mut body = response.into_body();
        if (200..300).contains(&code) {
            return Ok(body);
        }
        let text = body
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let status: Status = serde_json::from_str(&text).unwrap_or_default();
        let message = if status.message.is_empty() {
            text.trim().chars().take(300).collect()
        } else {
            status.message
        };
        Err(ApiError::Status {
            code,
            reason: status.reason,
            message,
        })
    }

    /// Lists our pod; returns it with the list's resourceVersion.
    pub fn list(&self) -> Result<(Pod, String), ApiError> {
        let mut body = self.get(&self.target.pods_url())?;
        let bytes = body
            .with_config()
            .limit(MAX_LINE as u64)
            .read_to_vec()
            .map_err(|e| ApiError::Transport(format!("reading the pod list: {}", describe(&e))))?;
        let list: PodList = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Malformed(format!("pod list: {e}")))?;
        let pod = list
            .items
            .into_iter()
            .find(|p| p.metadata.name == self.target.pod.value)
            .ok_or(ApiError::PodNotFound)?;
        let rv = if list.metadata.resource_version.is_empty() {
            pod.metadata.resource_version.clone()
        } else {
            list.metadata.resource_version
        };
        Ok((pod, rv))
    }

    /// Opens a watch on our pod from `resource_version`.
    pub fn watch(&self, resource_version: &str, timeout_seconds: u64) -> Result<Watch, ApiError> {
        let url = format!(
            "{}&watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}",
            self.target.pods_url(),
            encode(resource_version)
        );
        let body = self.get(&url)?;
        let reader: Box<dyn Read + Send> = Box::new(body.into_reader());
        Ok(Watch {
            reader: BufReader::with_capacity(64 << 10, reader),
            line: Vec::new(),
        })
    }
}

/// A ureq error in words, with the per-read timeout recognised.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

impl Watch {
    /// The next event; `Ok(None)` when the server ended the watch cleanly.
    pub fn next_event(&mut self) -> Result<Option<WatchEvent>, ApiError> {
        loop {
            self.line.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| {
                    ApiError::Transport(format!("reading the watch: {}", describe_io(&e)))
                })?;
            if read == 0 {
                return Ok(None);
            }
            if self.line.len() > MAX_LINE {
                return Err(ApiError::Malformed(format!(
                    "a watch line is larger than {} MiB",
                    MAX_LINE >> 20
                )));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !self.line.ends_with(b"\n") {
                // EOF in the middle of a line: the connection broke.
                return Err(ApiError::Transport(
                    "the watch ended in the middle of an event".into(),
                ));
            }
            return decode_event(&self.line).map(Some);
        }
    }
}

fn describe_io(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return describe(inner);
    }
    e.to_string()
}

/// Decodes one watch line.
pub fn decode_event(line: &[u8]) -> Result<WatchEvent, ApiError> {
    let raw: RawEvent = serde_json::from_slice(line)
        .map_err(|e| ApiError::Malformed(format!("watch event: {e}")))?;
    let pod = |object: serde_json::Value| {
        serde_json::from_value::<Pod>(object)
            .map_err(|e| ApiError::Malformed(format!("{} event: {e}", raw.kind)))
    };
    match raw.kind.as_str() {
        "ADDED" | "MODIFIED" | "DELETED" => {
            let deleted = raw.kind == "DELETED";
            let pod = pod(raw.object.clone())?;
            if pod.metadata.resource_version.is_empty() {
                return Err(ApiError::Malformed(format!(
                    "{} event without metadata.resourceVersion",
                    raw.kind
                )));
            }
            Ok(WatchEvent::Pod {
                pod: Box::new(pod),
                deleted,
            })
        }
        "BOOKMARK" => {
            let rv = raw.object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            if rv.is_empty() {
                return Err(ApiError::Malformed(
                    "BOOKMARK without metadata.resourceVersion".into(),
                ));
            }
            Ok(WatchEvent::Bookmark {
                resource_version: rv.to_string(),
            })
        }
        "ERROR" => {
            let status: Status = serde_json::from_value(raw.object).unwrap_or_default();
            Ok(WatchEvent::Error {
                code: status.code,
                reason: status.reason,
                message: status.message,
            })
        }
        other => Err(ApiError::Malformed(format!(
            "unknown watch event type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeEnv {
        vars: HashMap<&'static str, &'static str>,
        files: HashMap<String, &'static str>,
        hostname: Option<&'static str>,
    }

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|v| v.to_string())
        }
        fn read(&self, path: &Path) -> Option<String> {
            self.files
                .get(&path.display().to_string())
                .map(|v| v.to_string())
        }
        fn hostname(&self) -> Option<String> {
            self.hostname.map(str::to_string)
        }
    }

    fn env(vars: &[(&'static str, &'static str)], files: &[(&str, &'static str)]) -> FakeEnv {
        FakeEnv {
            vars: vars
                .iter()
                .copied()
                .chain([("KUBERNETES_SERVICE_HOST", "10.96.0.1")])
                .collect(),
            files: files.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            hostname: Some("host-name"),
        }
    }

    #[test]
    fn env_beats_podinfo_beats_hostname() {
        let files = [
            ("/etc/podinfo/name", " from-file\n"),
            ("/etc/podinfo/namespace", "ns-file\n"),
        ];
        let t = Target::resolve(&env(&[("KOORDINATOR_POD_NAME", "from-env")], &files)).unwrap();
        assert_eq!(
            t.pod,
            Found {
                value: "from-env".into(),
                source: "KOORDINATOR_POD_NAME".into()
            }
        );
        assert_eq!(
            t.namespace,
            Found {
                value: "ns-file".into(),
                source: "/etc/podinfo/namespace".into()
            }
        );

        let t = Target::resolve(&env(&[], &files)).unwrap();
        assert_eq!(t.pod.value, "from-file", "values from files are trimmed");

        let t = Target::resolve(&env(
            &[],
            &[(
                "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
                "sa-ns",
            )],
        ))
        .unwrap();
        assert_eq!(t.pod.source, "the hostname");
        assert_eq!(t.namespace.value, "sa-ns");
    }

    #[test]
    fn directory_overrides_are_honoured() {
        let t = Target::resolve(&env(
            &[
                ("KOORDINATOR_PODINFO_DIR", "/pi"),
                ("KOORDINATOR_SERVICEACCOUNT_DIR", "/sa"),
            ],
            &[("/pi/name", "p"), ("/sa/namespace", "n")],
        ))
        .unwrap();
        assert_eq!(
            (t.pod.value.as_str(), t.namespace.value.as_str()),
            ("p", "n")
        );
        assert_eq!(t.token_path, PathBuf::from("/sa/token"));
        assert_eq!(t.ca_path, PathBuf::from("/sa/ca.crt"));
    }

    #[test]
    fn server_url_brackets_ipv6_and_defaults_the_port() {
        let t = Target::resolve(&env(&[("KOORDINATOR_POD_NAMESPACE", "n")], &[])).unwrap();
        assert_eq!(t.server, "https://10.96.0.1:443");
        let mut e = env(
            &[
                ("KOORDINATOR_POD_NAMESPACE", "n"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
            ],
            &[],
        );
        e.vars.insert("KUBERNETES_SERVICE_HOST", "fd00::1");
        assert_eq!(
            Target::resolve(&e).unwrap().server,
            "https://[fd00::1]:6443"
        );
    }

    #[test]
    fn missing_identity_says_what_to_set() {
        let e = env(&[], &[]);
        assert!(Target::resolve(&e)
            .unwrap_err()
            .0
            .contains("set KOORDINATOR_POD_NAMESPACE"));
        let mut e = env(&[("KOORDINATOR_POD_NAMESPACE", "n")], &[]);
        e.vars.remove("KUBERNETES_SERVICE_HOST");
        assert!(Target::resolve(&e)
            .unwrap_err()
            .0
            .starts_with("KUBERNETES_SERVICE_HOST is not set"));
        let mut e = env(&[("KOORDINATOR_POD_NAMESPACE", "n")], &[]);
        e.hostname = None;
        assert!(Target::resolve(&e)
            .unwrap_err()
            .0
            .contains("set KOORDINATOR_POD_NAME"));
    }

    #[test]
    fn urls_select_the_pod_by_name() {
        let t = Target::resolve(&env(
            &[
                ("KOORDINATOR_POD_NAME", "a.b"),
                ("KOORDINATOR_POD_NAMESPACE", "n s"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(
            t.pods_url(),
            "https://10.96.0.1:443/api/v1/namespaces/n%20s/pods?fieldSelector=metadata.name%3Da.b"
        );
    }

    #[test]
    fn watch_events_decode() {
        let e = decode_event(
            br#"{"type":"ADDED","object":{"metadata":{"name":"p","resourceVersion":"5"}}}"#,
        )
        .unwrap();
        assert!(
            matches!(e, WatchEvent::Pod { deleted: false, ref pod } if pod.metadata.resource_version == "5")
        );
        let e = decode_event(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}"#,
        )
        .unwrap();
        assert!(
            matches!(e, WatchEvent::Bookmark { ref resource_version } if resource_version == "9")
        );
        let e = decode_event(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 217 (219)"}}"#,
        )
        .unwrap();
        assert!(matches!(e, WatchEvent::Error { code: 410, .. }));
    }

    #[test]
    fn malformed_watch_lines_are_errors_not_panics() {
        for line in [
            &b"not json"[..],
            br#"{"type":"ADDED"}"#,
            br#"{"type":"ADDED","object":{"metadata":{}}}"#,
            br#"{"type":"ADDED","object":{"status":{"containerStatuses":"nope"}}}"#,
            br#"{"type":"BOOKMARK","object":{}}"#,
            br#"{"type":"WHATEVER","object":{}}"#,
            br#"[1,2,3]"#,
        ] {
            assert!(
                matches!(decode_event(line), Err(ApiError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
