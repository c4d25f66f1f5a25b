//! A fake Kubernetes API server for pods, faithful where koordinator cares:
//! HTTPS with a CA made at test time, bearer tokens (401/403 `Status`
//! bodies), list and watch with `fieldSelector=metadata.name`, a global
//! resourceVersion, history compaction (ERROR 410 inside a 200 stream, like
//! kube-apiserver after a restart), bookmarks, `timeoutSeconds`, chunked
//! JSON lines, and faults on demand.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a bearer token may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// get/list/watch on all pods of every namespace (the broad Role).
    AllPods,
    /// get/list/watch restricted by `resourceNames: [pod]`: allowed only
    /// with `fieldSelector=metadata.name=<pod>`, as the real authorizer does.
    OnePod(String),
    /// Authenticated, but no RBAC: 403.
    Nothing,
}

/// One-shot faults, consumed by the next request they apply to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next request (list or watch) answers 500 with a Status body.
    Status500,
    /// The next request answers 429 with `Retry-After: N`, as API Priority
    /// and Fairness does when the server is overloaded.
    TooManyRequests(u64),
    /// The next request answers 503 with `Retry-After: N`.
    Unavailable(u64),
    /// The next request answers 403 with this message (a proxy that echoes things).
    Forbidden(String),
    /// The next list answers 200, then sends one byte every interval, forever.
    TrickleList(Duration),
    /// The next list returns a pod with our name from another namespace
    /// instead of ours (a proxy that ignores the path), all its containers ready.
    ForeignNamespace,
    /// The next watch sends its headers, then one space every interval, forever.
    Trickle(Duration),
    /// The next watch first sends an event for another pod, all its
    /// containers ready and terminated, as a server ignoring the field selector would.
    ForeignEvent,
    /// The next watch sends half an event and closes the connection.
    DropMidStream,
    /// The next watch sends its headers and then nothing at all for this long.
    Stall(Duration),
    /// The next watch sends an ERROR event with a 410 Status, then ends.
    Error410InStream,
    /// The next watch answers HTTP 410 Gone.
    Http410,
    /// The next watch sends a line that is not JSON.
    MalformedLine,
    /// The next watch sends a line of 9 MiB.
    OversizedLine,
    /// The next watch sends a well-formed event whose object is not a pod.
    WrongShape,
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub path: String,
    pub query: HashMap<String, String>,
    pub status: u16,
}

impl Request {
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "1" || w == "true")
    }
}

struct Event {
    rv: u64,
    kind: &'static str,
    namespace: String,
    name: String,
    object: Value,
}

struct State {
    rv: u64,
    pods: Vec<(String, String, Value)>,
    history: Vec<Event>,
    /// Watches from a resourceVersion below this get 410.
    compacted_below: u64,
    tokens: HashMap<String, Access>,
    faults: VecDeque<Fault>,
    requests: Vec<Request>,
    bookmark_every: Duration,
    /// Bumped to end every open watch cleanly.
    epoch: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

pub struct ApiServer {
    shared: Arc<Shared>,
    pub port: u16,
    pub ca_pem: String,
}

/// Certificates for one test run: a CA and a serving certificate for 127.0.0.1.
fn certificates() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-kubernetes-ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes.default.svc".to_string(),
    ])
    .unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), config)
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 with a random port.
    pub fn start() -> ApiServer {
        let (ca_pem, tls) = certificates();
        let tls = Arc::new(tls);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 100,
                pods: Vec::new(),
                history: Vec::new(),
                compacted_below: 0,
                tokens: HashMap::new(),
                faults: VecDeque::new(),
                requests: Vec::new(),
                bookmark_every: Duration::from_secs(60),
                epoch: 0,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !accept_shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (shared, tls) = (accept_shared.clone(), tls.clone());
                        std::thread::spawn(move || {
                            let _ = serve_connection(stream, tls, shared);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ApiServer {
            shared,
            port,
            ca_pem,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    pub fn set_token(&self, token: &str, access: Access) {
        self.state().tokens.insert(token.to_string(), access);
    }

    pub fn remove_token(&self, token: &str) {
        self.state().tokens.remove(token);
    }

    /// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.state().bookmark_every = every;
    }

    pub fn inject(&self, fault: Fault) {
        self.state().faults.push_back(fault);
        self.shared.changed.notify_all();
    }

    /// Creates a pod (an ADDED event).
    pub fn create_pod(&self, pod: Value) {
        let mut s = self.state();
        let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        s.pods.push((ns.clone(), name.clone(), pod));
        record(&mut s, "ADDED", &ns, &name);
        drop(s);
        self.shared.changed.notify_all();
    }

    /// Changes a pod (a MODIFIED event) and returns its new resourceVersion.
    pub fn modify_pod(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> u64 {
        let mut s = self.state();
        let pod = s
            .pods
            .iter_mut()
            .find(|(ns, n, _)| ns == namespace && n == name)
            .map(|(_, _, p)| p)
            .expect("modify_pod: no such pod");
        change(pod);
        record(&mut s, "MODIFIED", namespace, name);
        let rv = s.rv;
        drop(s);
        self.shared.changed.notify_all();
        rv
    }

    /// Starts a graceful deletion: `deletionTimestamp` and
    /// `deletionGracePeriodSeconds` appear in a MODIFIED event, as the API
    /// server writes them at the delete request.
    pub fn begin_deletion(&self, namespace: &str, name: &str, grace_seconds: u64) {
        self.modify_pod(namespace, name, |pod| {
            pod["metadata"]["deletionTimestamp"] = json!("2026-11-24T12:00:30Z");
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace_seconds);
        });
    }

    /// Deletes a pod (a DELETED event).
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let mut s = self.state();
        record(&mut s, "DELETED", namespace, name);
        s.pods.retain(|(ns, n, _)| !(ns == namespace && n == name));
        drop(s);
        self.shared.changed.notify_all();
    }

    /// Forgets history: a watch from any older resourceVersion gets 410.
    pub fn compact(&self) {
        let mut s = self.state();
        s.rv += 1;
        s.compacted_below = s.rv;
        s.history.clear();
    }

    /// Ends every open watch cleanly, as an API server restart would.
    pub fn end_watches(&self) {
        self.state().epoch += 1;
        self.shared.changed.notify_all();
    }

    /// How many requests the server has seen (without copying them).
    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
    }
}

fn record(s: &mut State, kind: &'static str, namespace: &str, name: &str) {
    s.rv += 1;
    let rv = s.rv;
    let mut object = Value::Null;
    if let Some((_, _, pod)) = s
        .pods
        .iter_mut()
        .find(|(ns, n, _)| ns == namespace && n == name)
    {
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        object = pod.clone();
    }
    s.history.push(Event {
        rv,
        kind,
        namespace: namespace.into(),
        name: name.into(),
        object,
    });
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn serve_connection(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let conn = rustls::ServerConnection::new(tls).map_err(io::Error::other)?;
    let mut reader = BufReader::new(Tls::new(conn, stream));
    loop {
        let Some((path, query, token)) = read_request(&mut reader)? else {
            return Ok(());
        };
        let keep = handle(reader.get_mut(), &shared, &path, &query, token.as_deref())?;
        if !keep {
            return Ok(());
        }
    }
}

/// A request head: path, decoded query, bearer token.
type Head = (String, HashMap<String, String>, Option<String>);

/// Reads one request head; `None` at a clean end of the connection.
fn read_request(reader: &mut BufReader<Tls>) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut token = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                token = value.trim().strip_prefix("Bearer ").map(str::to_string);
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    Ok(Some((path.to_string(), query, token)))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(out: &mut Tls, code: u16, body: &Value) -> io::Result<bool> {
    respond_with(out, code, body, "")
}

fn respond_with(out: &mut Tls, code: u16, body: &Value, headers: &str) -> io::Result<bool> {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()?;
    Ok(true)
}

fn log_request(shared: &Shared, path: &str, query: &HashMap<String, String>, status: u16) {
    shared.state.lock().unwrap().requests.push(Request {
        at: Instant::now(),
        path: path.to_string(),
        query: query.clone(),
        status,
    });
}

/// Serves one request; returns whether the connection may be reused.
fn handle(
    out: &mut Tls,
    shared: &Shared,
    path: &str,
    query: &HashMap<String, String>,
    token: Option<&str>,
) -> io::Result<bool> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let namespace = match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "pods"] => ns.to_string(),
        _ => {
            log_request(shared, path, query, 404);
            return respond(
                out,
                404,
                &status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
    };
    let selected = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_string);
    let watch = query.get("watch").is_some_and(|w| w == "1" || w == "true");
    let verb = if watch { "watch" } else { "list" };

    let access = token.and_then(|t| shared.state.lock().unwrap().tokens.get(t).cloned());
    let allowed = match &access {
        None => {
            log_request(shared, path, query, 401);
            return respond(out, 401, &status(401, "Unauthorized", "Unauthorized"));
        }
        Some(Access::AllPods) => true,
        Some(Access::OnePod(name)) => selected.as_deref() == Some(name.as_str()),
        Some(Access::Nothing) => false,
    };
    if !allowed {
        log_request(shared, path, query, 403);
        let message = format!(
            "pods is forbidden: User \"system:serviceaccount:{namespace}:koordinator-test\" cannot {verb} resource \"pods\" in API group \"\" in the namespace \"{namespace}\""
        );
        return respond(out, 403, &status(403, "Forbidden", &message));
    }

    let fault = {
        let mut s = shared.state.lock().unwrap();
        let applies = |f: &Fault| match f {
            Fault::Status500
            | Fault::TooManyRequests(_)
            | Fault::Unavailable(_)
            | Fault::Forbidden(_) => true,
            Fault::TrickleList(_) | Fault::ForeignNamespace => !watch,
            _ => watch,
        };
        if s.faults.front().is_some_and(applies) {
            s.faults.pop_front()
        } else {
            None
        }
    };
    match &fault {
        Some(Fault::Status500) => {
            log_request(shared, path, query, 500);
            return respond(
                out,
                500,
                &status(500, "InternalError", "etcdserver: request timed out"),
            );
        }
        Some(Fault::TooManyRequests(after)) => {
            log_request(shared, path, query, 429);
            return respond_with(
                out,
                429,
                &status(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                ),
                &format!("Retry-After: {after}\r\n"),
            );
        }
        Some(Fault::Unavailable(after)) => {
            log_request(shared, path, query, 503);
            return respond_with(
                out,
                503,
                &status(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
                &format!("Retry-After: {after}\r\n"),
            );
        }
        Some(Fault::Forbidden(message)) => {
            log_request(shared, path, query, 403);
            return respond(out, 403, &status(403, "Forbidden", message));
        }
        Some(Fault::TrickleList(every)) => {
            log_request(shared, path, query, 200);
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            out.flush()?;
            return trickle(out, shared, *every);
        }
        _ => {}
    }
    if fault == Some(Fault::Http410) {
        log_request(shared, path, query, 410);
        return respond(
            out,
            410,
            &status(410, "Expired", "too old resource version"),
        );
    }
    log_request(shared, path, query, 200);
    let matches =
        |ns: &str, name: &str| ns == namespace && selected.as_deref().is_none_or(|s| s == name);
    if !watch {
        let s = shared.state.lock().unwrap();
        let foreign = fault == Some(Fault::ForeignNamespace);
        let items: Vec<Value> = s
            .pods
            .iter()
            .filter(|(ns, n, _)| matches(ns, n))
            .map(|(ns, n, p)| {
                if foreign {
                    (ns, n, foreign_pod(p, n, "elsewhere"))
                } else {
                    (ns, n, p.clone())
                }
            })
            .map(|(_, _, mut p)| {
                // List items carry no kind.
                if let Some(o) = p.as_object_mut() {
                    o.remove("kind");
                }
                p
            })
            .collect();
        let body = json!({"kind": "PodList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
        drop(s);
        return respond(out, 200, &body);
    }
    stream_watch(out, shared, query, &matches, fault)
}

fn chunk(out: &mut Tls, line: &[u8]) -> io::Result<()> {
    write!(out, "{:x}\r\n", line.len())?;
    out.write_all(line)?;
    out.write_all(b"\r\n")?;
    out.flush()
}

fn event_line(kind: &str, object: &Value) -> Vec<u8> {
    let mut line = json!({"type": kind, "object": object})
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

fn stream_watch(
    out: &mut Tls,
    shared: &Shared,
    query: &HashMap<String, String>,
    matches: &dyn Fn(&str, &str) -> bool,
    fault: Option<Fault>,
) -> io::Result<bool> {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )?;
    out.flush()?;

    match fault {
        Some(Fault::DropMidStream) => {
            write!(out, "20\r\n{{\"type\":\"MODIFIED\",\"object\":{{\"me")?;
            out.flush()?;
            out.conn.send_close_notify();
            let _ = out.flush();
            out.sock.shutdown(std::net::Shutdown::Both)?;
            return Ok(false);
        }
        Some(Fault::Stall(d)) => {
            std::thread::sleep(d);
            return Ok(false);
        }
        Some(Fault::Error410InStream) => {
            let rv = shared.state.lock().unwrap().rv;
            let s = status(
                410,
                "Expired",
                &format!("too old resource version: {from} ({rv})"),
            );
            chunk(out, &event_line("ERROR", &s))?;
            chunk(out, b"")?;
            return Ok(true);
        }
        Some(Fault::MalformedLine) => {
            chunk(
                out,
                b"{\"type\": \"MODIFIED\", \"object\": not json at all}\n",
            )?;
        }
        Some(Fault::OversizedLine) => {
            let mut line = br#"{"type":"MODIFIED","object":{"metadata":{"name":""#.to_vec();
            line.extend(std::iter::repeat_n(b'x', 9 << 20));
            line.extend(b"\"}}}\n");
            for piece in line.chunks(1 << 20) {
                chunk(out, piece)?;
            }
        }
        Some(Fault::Trickle(every)) => return trickle(out, shared, every),
        Some(Fault::ForeignEvent) => {
            let s = shared.state.lock().unwrap();
            let pod = s
                .pods
                .iter()
                .find(|(ns, n, _)| matches(ns, n))
                .map(|(ns, _, p)| foreign_pod(p, "other-pod", ns));
            drop(s);
            if let Some(pod) = pod {
                chunk(out, &event_line("MODIFIED", &pod))?;
            }
        }
        Some(Fault::WrongShape) => {
            chunk(
                out,
                &event_line(
                    "MODIFIED",
                    &json!({"metadata": {"name": 42}, "status": "weird"}),
                ),
            )?;
        }
        _ => {}
    }

    let opened = Instant::now();
    let mut next_rv = from;
    let mut last_sent = Instant::now();
    let mut s = shared.state.lock().unwrap();
    let epoch = s.epoch;
    if from != 0 && from < s.compacted_below {
        let message = format!("too old resource version: {from} ({})", s.rv);
        drop(s);
        chunk(out, &event_line("ERROR", &status(410, "Expired", &message)))?;
        chunk(out, b"")?;
        return Ok(true);
    }
    if from == 0 {
        // No resourceVersion: a synthetic ADDED for the current state first.
        let current: Vec<Value> = s
            .pods
            .iter()
            .filter(|(ns, n, _)| matches(ns, n))
            .map(|(_, _, p)| p.clone())
            .collect();
        next_rv = s.rv;
        drop(s);
        for pod in current {
            chunk(out, &event_line("ADDED", &pod))?;
        }
        s = shared.state.lock().unwrap();
    }
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let pending: Vec<Vec<u8>> = s
            .history
            .iter()
            .filter(|e| e.rv > next_rv && matches(&e.namespace, &e.name))
            .map(|e| event_line(e.kind, &e.object))
            .collect();
        next_rv = s.rv;
        let bookmark_every = s.bookmark_every;
        let fault_waiting = s.faults.front().is_some();
        let ended = s.epoch != epoch;
        drop(s);
        for line in pending {
            chunk(out, &line)?;
            last_sent = Instant::now();
        }
        let elapsed = opened.elapsed();
        if elapsed >= timeout || fault_waiting || ended {
            // A fault queued for "the next watch" ends this one first, like a
            // restarting API server would.
            if bookmarks && !fault_waiting && !ended {
                chunk(out, &bookmark(next_rv))?;
            }
            chunk(out, b"")?;
            return Ok(true);
        }
        if bookmarks && last_sent.elapsed() >= bookmark_every {
            chunk(out, &bookmark(next_rv))?;
            last_sent = Instant::now();
        }
        s = shared.state.lock().unwrap();
        let wait = (timeout - elapsed).min(Duration::from_millis(50));
        s = shared.changed.wait_timeout(s, wait).unwrap().0;
    }
}

/// Sends one space every `every` until the client goes or the server stops.
fn trickle(out: &mut Tls, shared: &Shared, every: Duration) -> io::Result<bool> {
    while !shared.stop.load(Ordering::Relaxed) {
        chunk(out, b" ")?;
        std::thread::sleep(every);
    }
    Ok(false)
}

/// A copy of `pod` under another name or namespace, every container ready
/// and then terminated: acting on it would start or stop the command.
fn foreign_pod(pod: &Value, name: &str, namespace: &str) -> Value {
    let mut p = pod.clone();
    p["metadata"]["name"] = json!(name);
    p["metadata"]["namespace"] = json!(namespace);
    p["metadata"]["uid"] = json!("uid-foreign");
    for list in ["containerStatuses", "initContainerStatuses"] {
        for c in p["status"][list].as_array_mut().into_iter().flatten() {
            c["ready"] = json!(true);
            c["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        }
    }
    p
}

fn bookmark(rv: u64) -> Vec<u8> {
    event_line(
        "BOOKMARK",
        &json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": rv.to_string()}}),
    )
}

/// The files a pod gets mounted: the service-account directory (token,
/// ca.crt, namespace) and a podinfo directory.
pub struct PodFiles {
    pub dir: PathBuf,
}

impl PodFiles {
    pub fn new(server: &ApiServer, namespace: &str, token: &str) -> PodFiles {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("koordinator-pod-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("serviceaccount")).unwrap();
        std::fs::write(dir.join("serviceaccount/ca.crt"), &server.ca_pem).unwrap();
        std::fs::write(dir.join("serviceaccount/namespace"), namespace).unwrap();
        let files = PodFiles { dir };
        files.write_token(token);
        files
    }

    pub fn serviceaccount(&self) -> PathBuf {
        self.dir.join("serviceaccount")
    }

    /// Replaces the token file atomically, as the kubelet does when it rotates.
    pub fn write_token(&self, token: &str) {
        let tmp = self.dir.join("serviceaccount/.token.tmp");
        std::fs::write(&tmp, token).unwrap();
        std::fs::rename(tmp, self.serviceaccount().join("token")).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for PodFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads a file to a string, or "" when it does not exist.
pub fn read_or_empty(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}
