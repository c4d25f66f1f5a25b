//! Who we are (pod name, namespace), how to reach the API server, and the
//! three requests koordinator makes: list its pod, watch it, and (only to
//! find a pod whose hostname is not its name) list the namespace.
//!
//! Every request has one overall deadline: a list a short one (30 s by
//! default), a watch its `timeoutSeconds` plus a margin ([`watch_margin`]).
//! A server or middlebox that trickles bytes cannot keep a request open
//! past it.

use crate::client::http::{self, Body, Head, Stream};
use crate::rules::pod::Pod;
use serde::Deserialize;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEFAULT_PODINFO_DIR: &str = "/etc/podinfo";
pub const DEFAULT_SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// A watch line or list body larger than this is treated as a failed watch.
pub const MAX_LINE: usize = 8 << 20;
/// How long past its `timeoutSeconds` a watch may take to end: a tenth of
/// it, between 2 and 15 s.
pub fn watch_margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_secs(2), Duration::from_secs(15))
}
/// Buffer per connection, and per open watch.
const BUFFER: usize = 8 << 10;

/// A value and where it came from, for `--check` and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub source: String,
}

impl Found {
    pub fn from_hostname(&self) -> bool {
        self.source == HOSTNAME
    }
}

const HOSTNAME: &str = "the hostname";

/// Everything needed to talk to the API server about our own pod.
#[derive(Clone, Debug)]
pub struct Target {
    pub pod: Found,
    pub namespace: Found,
    /// `https://host:port`, IPv6 hosts in brackets.
    pub server: String,
    pub host: String,
    pub port: u16,
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
    fn exists(&self, path: &Path) -> bool;
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

    fn exists(&self, path: &Path) -> bool {
        path.exists()
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

/// The service-account directory in effect.
pub fn serviceaccount_dir(env: &dyn Environment) -> PathBuf {
    PathBuf::from(
        non_empty(env.var("KOORDINATOR_SERVICEACCOUNT_DIR"))
            .unwrap_or_else(|| DEFAULT_SERVICEACCOUNT_DIR.into()),
    )
}

/// Whether this container has API credentials at all: a token file and an
/// API server address. `Err` says which is missing.
pub fn credentials(env: &dyn Environment) -> Result<(), String> {
    let token = serviceaccount_dir(env).join("token");
    if non_empty(env.var("KUBERNETES_SERVICE_HOST")).is_none() {
        return Err(
            "KUBERNETES_SERVICE_HOST is not set (this is not running in a Kubernetes pod)".into(),
        );
    }
    if !env.exists(&token) {
        return Err(format!(
            "there is no service-account token at {} (the pod has automountServiceAccountToken: false, or no service account)",
            token.display()
        ));
    }
    Ok(())
}

impl Target {
    pub fn from_env() -> Result<Target, TargetError> {
        Target::resolve(&ProcessEnvironment)
    }

    /// Resolves the target in the documented order (README, "Pod identity").
    /// Missing credentials are reported first: they are the real problem
    /// when a pod has no token, whatever else is missing too.
    pub fn resolve(env: &dyn Environment) -> Result<Target, TargetError> {
        if let Err(why) = credentials(env) {
            return Err(TargetError(format!(
                "no API credentials: {why}. Mount a service-account token (automountServiceAccountToken: true) with a Role that allows list and watch on pods, or coordinate without the API (README, \"Without API access\")"
            )));
        }
        let podinfo = PathBuf::from(
            non_empty(env.var("KOORDINATOR_PODINFO_DIR"))
                .unwrap_or_else(|| DEFAULT_PODINFO_DIR.into()),
        );
        let serviceaccount = serviceaccount_dir(env);
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
            .or_else(|| {
                non_empty(env.hostname()).map(|value| Found {
                    value,
                    source: HOSTNAME.into(),
                })
            })
            .ok_or_else(|| {
                TargetError("cannot tell which pod this is: set KOORDINATOR_POD_NAME from the downward API (fieldRef: metadata.name)".into())
            })?;
        let namespace = from_var("KOORDINATOR_POD_NAMESPACE")
            .or_else(|| from_file(podinfo.join("namespace")))
            .or_else(|| from_file(serviceaccount.join("namespace")))
            .ok_or_else(|| {
                TargetError(format!(
                    "cannot tell the pod's namespace: set KOORDINATOR_POD_NAMESPACE from the downward API (fieldRef: metadata.namespace) ({} has no namespace file)",
                    serviceaccount.display()
                ))
            })?;
        let host = non_empty(env.var("KUBERNETES_SERVICE_HOST")).unwrap_or_default();
        let port_text =
            non_empty(env.var("KUBERNETES_SERVICE_PORT")).unwrap_or_else(|| "443".into());
        let port = port_text.parse::<u16>().map_err(|_| {
            TargetError(format!(
                "KUBERNETES_SERVICE_PORT={port_text:?} is not a port number"
            ))
        })?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let shown = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Target {
            pod,
            namespace,
            server: format!("https://{shown}:{port}"),
            host,
            port,
            token_path: serviceaccount.join("token"),
            ca_path: serviceaccount.join("ca.crt"),
        })
    }

    fn pods_path(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/pods?fieldSelector=metadata.name%3D{}",
            encode(&self.namespace.value),
            encode(&self.pod.value)
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// A failed API request, classified the way the watcher reacts to it.
#[derive(Debug)]
pub enum ApiError {
    /// No connection, TLS failure, deadline, broken stream: retry with backoff.
    Transport(String),
    /// The server answered with a non-2xx status (or an ERROR watch event).
    Status {
        code: u16,
        reason: String,
        message: String,
        /// `Retry-After`, in seconds (429 and 503 under API Priority and Fairness).
        retry_after: Option<u64>,
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
                ..
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
    #[serde(default, deserialize_with = "crate::rules::pod::null_as_default")]
    items: Vec<Pod>,
}

#[derive(Default, Deserialize)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: String,
}

/// One line of a watch stream, with the object left unparsed until the
/// type says what it is.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    object: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct BookmarkObject {
    metadata: BookmarkMeta,
}

#[derive(Deserialize)]
struct BookmarkMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
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

type Connection = BufReader<Stream>;

pub struct Client {
    target: Target,
    /// The overall deadline of a list request (connect and TLS included).
    list_timeout: Duration,
    /// The CA file as last read, and the TLS configuration built from it.
    tls: Option<(Vec<u8>, Arc<rustls::ClientConfig>)>,
    /// A connection kept open between requests.
    idle: Option<Connection>,
}

/// An open watch: a chunked stream of JSON lines.
pub struct Watch {
    reader: BufReader<Body<Connection>>,
    line: Vec<u8>,
}

impl Client {
    pub fn new(target: Target, list_timeout: Duration) -> Client {
        Client {
            target,
            list_timeout,
            tls: None,
            idle: None,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Switches to another pod name (found for a hostname that is not one).
    pub fn set_pod(&mut self, pod: Found) {
        self.target.pod = pod;
    }

    /// The bearer token, read afresh (projected tokens rotate), and
    /// registered with the logger so that no log line can show it.
    fn token(&self) -> Result<String, ApiError> {
        let token = std::fs::read_to_string(&self.target.token_path).map_err(|e| {
            ApiError::Credentials(format!(
                "cannot read the service-account token {}: {e} (is automountServiceAccountToken false?)",
                self.target.token_path.display()
            ))
        })?;
        let token = token.trim().to_string();
        crate::logger::add_secret(&token);
        Ok(token)
    }

    /// The TLS configuration, rebuilt when ca.crt changes (the kubelet
    /// updates it when the cluster CA is rotated).
    fn tls_config(&mut self) -> Result<Arc<rustls::ClientConfig>, ApiError> {
        let pem = std::fs::read(&self.target.ca_path).map_err(|e| {
            ApiError::Credentials(format!(
                "cannot read the cluster CA {}: {e} (is the service-account token mounted?)",
                self.target.ca_path.display()
            ))
        })?;
        if let Some((old, config)) = &self.tls {
            if *old == pem {
                return Ok(config.clone());
            }
        }
        let config = crate::client::tls::client_config(&pem).map_err(|e| {
            ApiError::Credentials(format!(
                "cannot use the cluster CA {}: {e}",
                self.target.ca_path.display()
            ))
        })?;
        self.tls = Some((pem, config.clone()));
        Ok(config)
    }

    fn connect(&mut self, deadline: Instant) -> Result<Connection, ApiError> {
        let config = self.tls_config()?;
        let sock = http::connect(&self.target.host, self.target.port, deadline).map_err(|e| {
            ApiError::Transport(format!("cannot connect to {}: {e}", self.target.server))
        })?;
        let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
            .map_err(|e| ApiError::Transport(format!("bad server name: {e}")))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| ApiError::Transport(format!("TLS: {e}")))?;
        let stream = Stream::Tls(Box::new(rustls::StreamOwned::new(conn, sock)));
        Ok(BufReader::with_capacity(BUFFER, stream))
    }

    /// Sends a GET and reads the response head. A 2xx response comes back
    /// with its body; anything else is read (64 KiB at most) into an error.
    fn get(&mut self, path: &str, deadline: Instant) -> Result<Body<Connection>, ApiError> {
        let token = self.token()?;
        let auth = format!("Bearer {token}");
        let agent = concat!("koordinator/", env!("CARGO_PKG_VERSION"));
        let headers = [
            ("Authorization", auth.as_str()),
            ("Accept", "application/json"),
            ("User-Agent", agent),
        ];
        let host = format!("{}:{}", self.target.host, self.target.port);
        // A kept connection may have been closed by the server meanwhile:
        // one retry on a fresh connection, and only then.
        let (mut conn, reused) = match self.idle.take() {
            Some(c) => (c, true),
            None => (self.connect(deadline)?, false),
        };
        conn.get_mut().set_deadline(deadline);
        let head = match send_and_read(&mut conn, &host, path, &headers) {
            Ok(head) => head,
            Err(_) if reused => {
                conn = self.connect(deadline)?;
                send_and_read(&mut conn, &host, path, &headers).map_err(transport)?
            }
            Err(e) => return Err(transport(e)),
        };
        let mut body = Body::new(conn, &head);
        if (200..300).contains(&head.status) {
            return Ok(body);
        }
        let mut text = Vec::new();
        let _ = (&mut body).take(64 << 10).read_to_end(&mut text);
        let status: Status = serde_json::from_slice(&text).unwrap_or_default();
        let message = if status.message.is_empty() {
            http::printable(String::from_utf8_lossy(&text).trim())
        } else {
            http::printable(&status.message)
        };
        let reason = if status.reason.is_empty() {
            default_reason(head.status).to_string()
        } else {
            http::printable(&status.reason)
        };
        Err(ApiError::Status {
            code: head.status,
            reason,
            message,
            retry_after: head.retry_after,
        })
    }

    /// Keeps a connection whose response was read to its end.
    fn keep(&mut self, body: Body<Connection>) {
        self.idle = body.into_reusable();
    }

    /// Lists the pods that match our name; returns them with the list's
    /// resourceVersion. The caller picks its own pod among them.
    pub fn list(&mut self) -> Result<(Vec<Pod>, String), ApiError> {
        let path = self.target.pods_path();
        let (list, _) = self.list_page(&path)?;
        Ok((list.items, list.metadata.resource_version))
    }

    fn list_page(&mut self, path: &str) -> Result<(PodList, usize), ApiError> {
        let mut body = self.get(path, Instant::now() + self.list_timeout)?;
        let mut bytes = Vec::new();
        (&mut body)
            .take(MAX_LINE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ApiError::Transport(format!("reading the pod list: {e}")))?;
        if bytes.len() > MAX_LINE {
            return Err(ApiError::Malformed(format!(
                "the pod list is larger than {} MiB",
                MAX_LINE >> 20
            )));
        }
        self.keep(body);
        let list: PodList = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Malformed(format!("pod list: {e}")))?;
        Ok((list, bytes.len()))
    }

    /// Lists every pod of the namespace, a page at a time, calling `visit`
    /// for each. Needs a Role without `resourceNames`; used only to find our
    /// pod when the hostname is not its name.
    pub fn list_namespace(&mut self, mut visit: impl FnMut(&Pod)) -> Result<(), ApiError> {
        let mut next = String::new();
        for _ in 0..100 {
            let mut path = format!(
                "/api/v1/namespaces/{}/pods?limit=100",
                encode(&self.target.namespace.value)
            );
            if !next.is_empty() {
                path.push_str("&continue=");
                path.push_str(&encode(&next));
            }
            let (list, _) = self.list_page(&path)?;
            list.items.iter().for_each(&mut visit);
            if list.metadata.continue_token.is_empty() {
                return Ok(());
            }
            next = list.metadata.continue_token;
        }
        Ok(())
    }

    /// Opens a watch on our pod from `resource_version`.
    pub fn watch(
        &mut self,
        resource_version: &str,
        timeout_seconds: u64,
    ) -> Result<Watch, ApiError> {
        let path = format!(
            "{}&watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}",
            self.target.pods_path(),
            encode(resource_version)
        );
        let timeout = Duration::from_secs(timeout_seconds);
        let deadline = Instant::now() + timeout + watch_margin(timeout);
        let body = self.get(&path, deadline)?;
        Ok(Watch {
            reader: BufReader::with_capacity(BUFFER, body),
            line: Vec::new(),
        })
    }

    /// Takes back the connection of a watch that the server ended cleanly.
    pub fn finish(&mut self, watch: Watch) {
        if watch.reader.buffer().is_empty() {
            self.keep(watch.reader.into_inner());
        }
    }
}

fn send_and_read(
    conn: &mut Connection,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Head> {
    http::send(conn.get_mut(), "GET", host, path, headers)?;
    http::read_head(conn)
}

fn default_reason(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        410 => "Expired",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Error",
    }
}

/// An I/O error in words, with TLS problems explained.
fn transport(e: io::Error) -> ApiError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    ApiError::Transport(match tls {
        Some(rustls::Error::InvalidCertificate(why)) => format!(
            "TLS: the API server's certificate was refused ({why:?}): is ca.crt this cluster's CA?"
        ),
        Some(other) => format!("TLS: {other}"),
        None => e.to_string(),
    })
}

impl Watch {
    /// The next event; `Ok(None)` when the server ended the watch cleanly.
    pub fn next_event(&mut self) -> Result<Option<WatchEvent>, ApiError> {
        loop {
            self.line.clear();
            // After an unusually large line, give the memory back.
            if self.line.capacity() > 1 << 20 {
                self.line = Vec::new();
            }
            let read = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| ApiError::Transport(format!("reading the watch: {}", transport(e))))?;
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

/// Decodes one watch line. Pure: a fuzz target drives it with any bytes.
pub fn decode_event(line: &[u8]) -> Result<WatchEvent, ApiError> {
    let raw: RawEvent = serde_json::from_slice(line)
        .map_err(|e| ApiError::Malformed(format!("watch event: {e}")))?;
    let object = raw.object.get();
    match &*raw.kind {
        kind @ ("ADDED" | "MODIFIED" | "DELETED") => {
            let pod: Pod = serde_json::from_str(object)
                .map_err(|e| ApiError::Malformed(format!("{kind} event: {e}")))?;
            if pod.metadata.resource_version.is_empty() || pod.metadata.name.is_empty() {
                return Err(ApiError::Malformed(format!(
                    "{kind} event without metadata.name or metadata.resourceVersion"
                )));
            }
            Ok(WatchEvent::Pod {
                pod: Box::new(pod),
                deleted: kind == "DELETED",
            })
        }
        "BOOKMARK" => {
            let b: BookmarkObject = serde_json::from_str(object)
                .map_err(|e| ApiError::Malformed(format!("BOOKMARK event: {e}")))?;
            if b.metadata.resource_version.is_empty() {
                return Err(ApiError::Malformed(
                    "BOOKMARK without metadata.resourceVersion".into(),
                ));
            }
            Ok(WatchEvent::Bookmark {
                resource_version: b.metadata.resource_version,
            })
        }
        "ERROR" => {
            let status: Status = serde_json::from_str(object).unwrap_or_default();
            Ok(WatchEvent::Error {
                code: status.code,
                reason: http::printable(&status.reason),
                message: http::printable(&status.message),
            })
        }
        other => Err(ApiError::Malformed(format!(
            "unknown watch event type {:?}",
            http::printable(other)
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
        fn exists(&self, path: &Path) -> bool {
            self.files.contains_key(&path.display().to_string())
        }
        fn hostname(&self) -> Option<String> {
            self.hostname.map(str::to_string)
        }
    }

    const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    fn env(vars: &[(&'static str, &'static str)], files: &[(&str, &'static str)]) -> FakeEnv {
        FakeEnv {
            vars: vars
                .iter()
                .copied()
                .chain([("KUBERNETES_SERVICE_HOST", "10.96.0.1")])
                .collect(),
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .chain([(TOKEN.to_string(), "t")])
                .collect(),
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
        assert_eq!(t.namespace.source, "/etc/podinfo/namespace");
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
        assert!(t.pod.from_hostname());
        assert_eq!(t.namespace.value, "sa-ns");
    }

    #[test]
    fn directory_overrides_are_honoured() {
        let mut e = env(
            &[
                ("KOORDINATOR_PODINFO_DIR", "/pi"),
                ("KOORDINATOR_SERVICEACCOUNT_DIR", "/sa"),
            ],
            &[
                ("/pi/name", "p"),
                ("/sa/namespace", "n"),
                ("/sa/token", "t"),
            ],
        );
        e.files.remove(TOKEN);
        let t = Target::resolve(&e).unwrap();
        assert_eq!(
            (t.pod.value.as_str(), t.namespace.value.as_str()),
            ("p", "n")
        );
        assert_eq!(t.token_path, PathBuf::from("/sa/token"));
        assert_eq!(t.ca_path, PathBuf::from("/sa/ca.crt"));
    }

    #[test]
    fn server_address_brackets_ipv6_and_defaults_the_port() {
        let t = Target::resolve(&env(&[("KOORDINATOR_POD_NAMESPACE", "n")], &[])).unwrap();
        assert_eq!((t.server.as_str(), t.port), ("https://10.96.0.1:443", 443));
        let mut e = env(
            &[
                ("KOORDINATOR_POD_NAMESPACE", "n"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
            ],
            &[],
        );
        e.vars.insert("KUBERNETES_SERVICE_HOST", "fd00::1");
        let t = Target::resolve(&e).unwrap();
        assert_eq!(
            (t.server.as_str(), t.host.as_str()),
            ("https://[fd00::1]:6443", "fd00::1")
        );
    }

    #[test]
    fn missing_credentials_are_reported_before_anything_else() {
        let mut e = env(&[], &[]);
        e.files.clear();
        e.hostname = None;
        let err = Target::resolve(&e).unwrap_err().0;
        assert!(
            err.starts_with("no API credentials: there is no service-account token"),
            "{err}"
        );
        assert!(err.contains("coordinate without the API"), "{err}");
        let mut e = env(&[("KOORDINATOR_POD_NAMESPACE", "n")], &[]);
        e.vars.remove("KUBERNETES_SERVICE_HOST");
        assert!(Target::resolve(&e)
            .unwrap_err()
            .0
            .starts_with("no API credentials: KUBERNETES_SERVICE_HOST is not set"));
    }

    #[test]
    fn missing_identity_says_what_to_set() {
        assert!(Target::resolve(&env(&[], &[]))
            .unwrap_err()
            .0
            .contains("set KOORDINATOR_POD_NAMESPACE"));
        let mut e = env(&[("KOORDINATOR_POD_NAMESPACE", "n")], &[]);
        e.hostname = None;
        assert!(Target::resolve(&e)
            .unwrap_err()
            .0
            .contains("set KOORDINATOR_POD_NAME"));
    }

    #[test]
    fn paths_select_the_pod_by_name() {
        let t = Target::resolve(&env(
            &[
                ("KOORDINATOR_POD_NAME", "a.b"),
                ("KOORDINATOR_POD_NAMESPACE", "n s"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(
            t.pods_path(),
            "/api/v1/namespaces/n%20s/pods?fieldSelector=metadata.name%3Da.b"
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
            br#"{"type":"ADDED","object":{"metadata":{"name":"p","resourceVersion":"1"},"status":{"containerStatuses":"nope"}}}"#,
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
