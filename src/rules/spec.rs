//! The coordination spec: JSON in `KOORDINATOR_SPEC`.
//!
//! Parsed by hand from a `serde_json::Value` rather than with serde's derive,
//! so that every error names the field at fault (`startDeps[1].condition`)
//! and a misspelt field gets a suggestion instead of serde's generic list.

use crate::init::signals::{self, Rewrites};
use crate::rules::facts::RestartPolicy;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

pub const ENV: &str = "KOORDINATOR_SPEC";
/// The original project's README spelt it with three O's; its users copied that.
pub const ENV_ALIAS: &str = "KOOORDINATOR_SPEC";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Ready,
    Started,
    /// Terminated with exit code 0.
    Completed,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Ready => "ready",
            Condition::Started => "started",
            Condition::Completed => "completed",
        }
    }
}

/// A start dependency: another container of the pod, or a local probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dependency {
    Container { name: String, condition: Condition },
    Probe(Probe),
}

impl Dependency {
    /// The container's name, for a container dependency.
    pub fn container(&self) -> Option<(&str, Condition)> {
        match self {
            Dependency::Container { name, condition } => Some((name, *condition)),
            Dependency::Probe(_) => None,
        }
    }

    /// How logs and messages name it: `proxy (ready)`, `http://127.0.0.1:9090/ready`.
    pub fn describe(&self) -> String {
        match self {
            Dependency::Container { name, condition } => format!("{name} ({})", condition.as_str()),
            Dependency::Probe(p) => p.target.to_string(),
        }
    }
}

/// A local probe (SPEC §7.1): holds once an attempt succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub target: ProbeTarget,
    /// Time between attempts.
    pub period: Duration,
    /// Time allowed for one attempt.
    pub timeout: Duration,
}

pub const DEFAULT_PROBE_PERIOD: Duration = Duration::from_millis(250);
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeTarget {
    /// A TCP connection to `host:port` succeeds.
    Tcp { host: String, port: u16 },
    /// A GET of `http://host:port/path` answers 2xx.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// The path exists.
    File(PathBuf),
}

impl std::fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            ProbeTarget::Tcp { host: h, port } => write!(f, "tcp {}:{port}", host(h)),
            ProbeTarget::Http {
                host: h,
                port,
                path,
            } => {
                write!(f, "http://{}:{port}{path}", host(h))
            }
            ProbeTarget::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// Where named dependencies are followed (SPEC §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceChoice {
    /// The API when credentials exist, else the state directory.
    Auto,
    Api,
    Local,
}

impl SourceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceChoice::Auto => "auto",
            SourceChoice::Api => "api",
            SourceChoice::Local => "local",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOn {
    Any,
    All,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpQuit {
    pub port: u16,
    pub path: String,
    pub method: String,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopAction {
    Signal(i32),
    Http(HttpQuit),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// This container's name, for publishing its state (SPEC §7.2).
    pub name: Option<String>,
    /// The pod's restart policy, for following containers without the API.
    /// `None`: not given (Never without the API; the pod's own with it).
    pub restart_policy: Option<RestartPolicy>,
    pub source: SourceChoice,
    pub start_deps: Vec<Dependency>,
    pub start_timeout: Option<Duration>,
    pub stop_deps: Vec<String>,
    pub stop_on: StopOn,
    pub term_waits_for_stop_deps: bool,
    pub stop_delay: Duration,
    pub term_signal: i32,
    /// `None`: send `term_signal`.
    pub when_stop_dep_exited: Option<StopAction>,
    pub term_timeout: Duration,
    /// Negative: the command's own exit code.
    pub terminated_by_stop_dep_exit_code: i32,
    pub killed_by_stop_dep_exit_code: i32,
    pub success_exit_codes: Vec<i32>,
    pub rewrite_signals: Rewrites,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            name: None,
            restart_policy: None,
            source: SourceChoice::Auto,
            start_deps: Vec::new(),
            start_timeout: None,
            stop_deps: Vec::new(),
            stop_on: StopOn::Any,
            term_waits_for_stop_deps: true,
            stop_delay: Duration::ZERO,
            term_signal: libc::SIGTERM,
            when_stop_dep_exited: None,
            term_timeout: Duration::from_secs(30),
            terminated_by_stop_dep_exit_code: 0,
            killed_by_stop_dep_exit_code: 137,
            success_exit_codes: Vec::new(),
            rewrite_signals: Rewrites::default(),
        }
    }
}

/// A configuration error in the spec. Exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {ENV}: {}", self.0)
    }
}

const FIELDS: &[&str] = &[
    "name",
    "restartPolicy",
    "source",
    "startDeps",
    "startTimeout",
    "stopDeps",
    "stopOn",
    "termWaitsForStopDeps",
    "stopDelay",
    "termSignal",
    "whenStopDepExited",
    "termTimeout",
    "terminatedByStopDepExitCode",
    "killedByStopDepExitCode",
    "successExitCodes",
    "rewriteSignals",
];

impl Spec {
    /// True when the spec coordinates anything (a plain init otherwise).
    pub fn coordinates(&self) -> bool {
        !self.start_deps.is_empty() || !self.stop_deps.is_empty()
    }

    /// The containers this one depends on, start dependencies first, each once.
    pub fn named_deps(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .start_deps
            .iter()
            .filter_map(|d| d.container().map(|(n, _)| n))
            .collect();
        for n in &self.stop_deps {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        names
    }

    /// The probes among the start dependencies.
    pub fn probes(&self) -> impl Iterator<Item = &Probe> {
        self.start_deps.iter().filter_map(|d| match d {
            Dependency::Probe(p) => Some(p),
            Dependency::Container { .. } => None,
        })
    }

    /// The restart policy that decides, without the API, whether a container
    /// that exited will come back.
    pub fn local_restart_policy(&self) -> RestartPolicy {
        self.restart_policy.unwrap_or(RestartPolicy::Never)
    }

    /// The action taken when the stop dependencies have exited.
    pub fn stop_action(&self) -> StopAction {
        self.when_stop_dep_exited
            .clone()
            .unwrap_or(StopAction::Signal(self.term_signal))
    }

    /// The spec with every default filled in, as `--validate` prints it.
    pub fn to_json(&self) -> Value {
        let duration = |d: Duration| Value::from(humantime::format_duration(d).to_string());
        let deps: Vec<Value> = self
            .start_deps
            .iter()
            .map(|d| match d {
                Dependency::Container { name, condition } => {
                    json!({"name": name, "condition": condition.as_str()})
                }
                Dependency::Probe(p) => {
                    let mut o = match &p.target {
                        ProbeTarget::Tcp { .. } => {
                            json!({"tcp": p.target.to_string().trim_start_matches("tcp ")})
                        }
                        ProbeTarget::Http { .. } => json!({"http": p.target.to_string()}),
                        ProbeTarget::File(path) => json!({"file": path}),
                    };
                    o["period"] = duration(p.period);
                    o["timeout"] = duration(p.timeout);
                    o
                }
            })
            .collect();
        let action = match self.stop_action() {
            StopAction::Signal(s) => json!({"signal": signals::name(s)}),
            StopAction::Http(h) => json!({"http": {
                "port": h.port, "path": h.path, "method": h.method, "timeout": duration(h.timeout),
            }}),
        };
        let rewrites: Map<String, Value> = self
            .rewrite_signals
            .iter()
            .map(|(from, to)| (signals::name(*from), Value::from(signals::name(*to))))
            .collect();
        json!({
            "name": self.name,
            "restartPolicy": self.restart_policy.map(RestartPolicy::as_str),
            "source": self.source.as_str(),
            "startDeps": deps,
            "startTimeout": self.start_timeout.map(duration),
            "stopDeps": self.stop_deps,
            "stopOn": match self.stop_on { StopOn::Any => "any", StopOn::All => "all" },
            "termWaitsForStopDeps": self.term_waits_for_stop_deps,
            "stopDelay": duration(self.stop_delay),
            "termSignal": signals::name(self.term_signal),
            "whenStopDepExited": action,
            "termTimeout": duration(self.term_timeout),
            "terminatedByStopDepExitCode": self.terminated_by_stop_dep_exit_code,
            "killedByStopDepExitCode": self.killed_by_stop_dep_exit_code,
            "successExitCodes": self.success_exit_codes,
            "rewriteSignals": rewrites,
        })
    }
}

/// Picks the spec text from the two environment spellings.
/// Returns the text and whether it came from the three-O alias.
pub fn select(
    primary: Option<&str>,
    alias: Option<&str>,
) -> Result<Option<(String, bool)>, SpecError> {
    let present = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (present(primary), present(alias)) {
        (Some(p), Some(a)) if p != a => Err(SpecError(format!(
            "both {ENV} and {ENV_ALIAS} are set, to different values; keep only {ENV}"
        ))),
        (Some(p), _) => Ok(Some((p, false))),
        (None, Some(a)) => Ok(Some((a, true))),
        (None, None) => Ok(None),
    }
}

/// Parses and validates a spec.
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| SpecError(format!("not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(SpecError(format!(
            "must be a JSON object such as {{\"startDeps\": [\"proxy\"]}}, not {}",
            type_name(&value)
        )));
    };
    let mut spec = Spec::default();
    for (key, value) in &object {
        let f = key.as_str();
        // `--validate` prints unset optional fields as null; they read back as unset.
        if value.is_null() && ["name", "restartPolicy", "startTimeout"].contains(&f) {
            continue;
        }
        match f {
            "name" => spec.name = Some(container_name(f, value)?),
            "restartPolicy" => {
                spec.restart_policy = Some(
                    RestartPolicy::parse(&string(f, value)?).ok_or_else(|| {
                        field_error(
                            f,
                            format!("{value} is not \"Never\", \"OnFailure\" or \"Always\" (copy the pod's restartPolicy)"),
                        )
                    })?,
                )
            }
            "source" => {
                spec.source = match string(f, value)?.as_str() {
                    "auto" => SourceChoice::Auto,
                    "api" => SourceChoice::Api,
                    "local" => SourceChoice::Local,
                    other => {
                        return Err(field_error(
                            f,
                            format!("{other:?} is not \"auto\", \"api\" or \"local\""),
                        ))
                    }
                }
            }
            "startDeps" => spec.start_deps = dependencies(f, value)?,
            "startTimeout" => spec.start_timeout = Some(duration(f, value)?),
            "stopDeps" => spec.stop_deps = names(f, value)?,
            "stopOn" => {
                spec.stop_on = match string(f, value)?.as_str() {
                    "any" => StopOn::Any,
                    "all" => StopOn::All,
                    other => {
                        return Err(field_error(
                            f,
                            format!("{other:?} is not \"any\" or \"all\""),
                        ))
                    }
                }
            }
            "termWaitsForStopDeps" => {
                spec.term_waits_for_stop_deps = value
                    .as_bool()
                    .ok_or_else(|| wrong_type(f, "true or false", value))?
            }
            "stopDelay" => spec.stop_delay = duration(f, value)?,
            "termSignal" => spec.term_signal = signal(f, value)?,
            "whenStopDepExited" => spec.when_stop_dep_exited = Some(stop_action(f, value)?),
            "termTimeout" => spec.term_timeout = duration(f, value)?,
            "terminatedByStopDepExitCode" => {
                spec.terminated_by_stop_dep_exit_code =
                    integer(f, value, i32::MIN as i64, 255)? as i32
            }
            "killedByStopDepExitCode" => spec.killed_by_stop_dep_exit_code = exit_code(f, value)?,
            "successExitCodes" => {
                let items = array(f, value)?;
                spec.success_exit_codes = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| exit_code(&format!("{f}[{i}]"), v))
                    .collect::<Result<_, _>>()?;
            }
            "rewriteSignals" => spec.rewrite_signals = rewrites(f, value)?,
            _ => return Err(unknown_field("", key, FIELDS)),
        }
    }
    Ok(spec)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn field_error(field: &str, message: String) -> SpecError {
    SpecError(format!("field \"{field}\": {message}"))
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> SpecError {
    field_error(
        field,
        format!("must be {expected}, not {} ({got})", type_name(got)),
    )
}

fn unknown_field(parent: &str, key: &str, valid: &[&str]) -> SpecError {
    let place = if parent.is_empty() {
        String::new()
    } else {
        format!(" in \"{parent}\"")
    };
    match nearest(key, valid) {
        Some(best) => SpecError(format!(
            "unknown field \"{key}\"{place}, did you mean \"{best}\"?"
        )),
        None => SpecError(format!(
            "unknown field \"{key}\"{place}; valid fields are: {}",
            valid.join(", ")
        )),
    }
}

/// The valid name closest to a misspelt one, if any is close enough to be a
/// plausible typo (case differences count as one edit in total).
pub fn nearest<'a>(wrong: &str, valid: &[&'a str]) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    valid
        .iter()
        .map(|v| {
            let d = if v.to_lowercase() == wrong_lower {
                1
            } else {
                edit_distance(wrong, v)
            };
            (d, *v)
        })
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn string(field: &str, v: &Value) -> Result<String, SpecError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| wrong_type(field, "a string", v))
}

fn array<'v>(field: &str, v: &'v Value) -> Result<&'v Vec<Value>, SpecError> {
    v.as_array().ok_or_else(|| wrong_type(field, "a list", v))
}

fn integer(field: &str, v: &Value, min: i64, max: i64) -> Result<i64, SpecError> {
    let n = v
        .as_i64()
        .ok_or_else(|| wrong_type(field, "a whole number", v))?;
    if n < min || n > max {
        return Err(field_error(
            field,
            format!("{n} is out of range ({min} to {max})"),
        ));
    }
    Ok(n)
}

fn exit_code(field: &str, v: &Value) -> Result<i32, SpecError> {
    integer(field, v, 0, 255).map(|n| n as i32)
}

fn duration(field: &str, v: &Value) -> Result<Duration, SpecError> {
    let text = v
        .as_str()
        .ok_or_else(|| wrong_type(field, "a duration string such as \"10s\"", v))?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        field_error(
            field,
            format!("{text:?} is not a duration ({e}); use e.g. \"10s\", \"1m30s\", \"250ms\""),
        )
    })
}

fn signal(field: &str, v: &Value) -> Result<i32, SpecError> {
    let parsed = match v {
        Value::String(s) => signals::parse(s),
        Value::Number(n) => n.as_i64().and_then(|n| signals::parse(&n.to_string())),
        _ => {
            return Err(wrong_type(
                field,
                "a signal name such as \"SIGTERM\" or a number",
                v,
            ))
        }
    };
    parsed.ok_or_else(|| {
        field_error(field, format!("unknown signal {v}; use a name such as \"SIGTERM\" or \"TERM\", or a number from 1 to 64"))
    })
}

fn container_name(field: &str, v: &Value) -> Result<String, SpecError> {
    let name = string(field, v)?;
    if name.trim().is_empty() {
        return Err(field_error(field, "container name is empty".into()));
    }
    // Kubernetes container names are DNS labels; these names also become
    // file names in the state directory.
    let label = name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !label {
        return Err(field_error(
            field,
            format!("{name:?} is not a container name: Kubernetes container names are lower-case letters, digits and '-', at most 63 characters"),
        ));
    }
    Ok(name)
}

fn no_duplicates<'a>(
    field: &str,
    names: impl Iterator<Item = &'a String>,
) -> Result<(), SpecError> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if seen.contains(&name.as_str()) {
            return Err(field_error(field, format!("{name:?} is listed twice")));
        }
        seen.push(name);
    }
    Ok(())
}

fn names(field: &str, v: &Value) -> Result<Vec<String>, SpecError> {
    let names: Vec<String> = array(field, v)?
        .iter()
        .enumerate()
        .map(|(i, item)| container_name(&format!("{field}[{i}]"), item))
        .collect::<Result<_, _>>()?;
    no_duplicates(field, names.iter())?;
    Ok(names)
}

fn dependencies(field: &str, v: &Value) -> Result<Vec<Dependency>, SpecError> {
    let deps: Vec<Dependency> = array(field, v)?
        .iter()
        .enumerate()
        .map(|(i, item)| dependency(&format!("{field}[{i}]"), item))
        .collect::<Result<_, _>>()?;
    let keys: Vec<String> = deps
        .iter()
        .map(|d| match d {
            Dependency::Container { name, .. } => name.clone(),
            Dependency::Probe(p) => p.target.to_string(),
        })
        .collect();
    no_duplicates(field, keys.iter())?;
    Ok(deps)
}

const DEPENDENCY_FIELDS: &[&str] = &[
    "name",
    "condition",
    "tcp",
    "http",
    "file",
    "period",
    "timeout",
];

fn dependency(field: &str, v: &Value) -> Result<Dependency, SpecError> {
    let object = match v {
        Value::String(_) => {
            return Ok(Dependency::Container {
                name: container_name(field, v)?,
                condition: Condition::Ready,
            })
        }
        Value::Object(o) => o,
        _ => {
            return Err(wrong_type(
                field,
                "a container name, {\"name\": ..., \"condition\": ...} or a probe such as {\"tcp\": \"127.0.0.1:5432\"}",
                v,
            ))
        }
    };
    for key in object.keys() {
        if !DEPENDENCY_FIELDS.contains(&key.as_str()) {
            return Err(unknown_field(field, key, DEPENDENCY_FIELDS));
        }
    }
    let probe_keys: Vec<&str> = ["tcp", "http", "file"]
        .into_iter()
        .filter(|k| object.contains_key(*k))
        .collect();
    let has_name = object.contains_key("name") || object.contains_key("condition");
    match (has_name, probe_keys.as_slice()) {
        (true, []) => container_dependency(field, object),
        (false, [kind]) => probe(field, kind, object).map(Dependency::Probe),
        (false, []) => Err(field_error(
            field,
            "give a container (\"name\") or a probe (\"tcp\", \"http\" or \"file\")".into(),
        )),
        (true, _) => Err(field_error(
            field,
            "a dependency is a container (\"name\", \"condition\") or a probe (\"tcp\", \"http\", \"file\"), not both".into(),
        )),
        (false, _) => Err(field_error(
            field,
            format!("one probe per dependency, not {}", probe_keys.join(" and ")),
        )),
    }
}

fn container_dependency(field: &str, object: &Map<String, Value>) -> Result<Dependency, SpecError> {
    let mut condition = Condition::Ready;
    let mut name = None;
    for (key, value) in object {
        match key.as_str() {
            "name" => name = Some(container_name(&format!("{field}.name"), value)?),
            "condition" => {
                let f = format!("{field}.condition");
                condition = match string(&f, value)?.as_str() {
                    "ready" => Condition::Ready,
                    "started" => Condition::Started,
                    "completed" => Condition::Completed,
                    other => {
                        return Err(field_error(
                            &f,
                            format!(
                                "{other:?} is not one of \"ready\", \"started\", \"completed\""
                            ),
                        ))
                    }
                };
            }
            _ => {
                return Err(field_error(
                    &format!("{field}.{key}"),
                    "belongs to probes, not to container dependencies".into(),
                ))
            }
        }
    }
    let name = name.ok_or_else(|| field_error(field, "\"name\" is missing".into()))?;
    Ok(Dependency::Container { name, condition })
}

fn probe(field: &str, kind: &str, object: &Map<String, Value>) -> Result<Probe, SpecError> {
    let f = format!("{field}.{kind}");
    let text = string(&f, &object[kind])?;
    let target = match kind {
        "tcp" => {
            let (host, port) = host_port(text.trim()).ok_or_else(|| {
                field_error(
                    &f,
                    format!(
                        "{text:?} is not HOST:PORT; use e.g. \"127.0.0.1:5432\" or \"[::1]:5432\""
                    ),
                )
            })?;
            ProbeTarget::Tcp { host, port }
        }
        "http" => http_url(&f, text.trim())?,
        _ => {
            let path = PathBuf::from(text.trim());
            if !path.is_absolute() {
                return Err(field_error(
                    &f,
                    format!("{text:?} is not an absolute path, e.g. \"/shared/ready\""),
                ));
            }
            ProbeTarget::File(path)
        }
    };
    let mut probe = Probe {
        target,
        period: DEFAULT_PROBE_PERIOD,
        timeout: DEFAULT_PROBE_TIMEOUT,
    };
    for (key, value) in object {
        let f = format!("{field}.{key}");
        let slot = match key.as_str() {
            "period" => &mut probe.period,
            "timeout" => &mut probe.timeout,
            _ => continue,
        };
        *slot = duration(&f, value)?;
        if *slot < Duration::from_millis(10) {
            return Err(field_error(&f, "must be at least 10ms".into()));
        }
    }
    Ok(probe)
}

/// `host:port` with the host bracketed when it is an IPv6 address.
fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    valid_host.then(|| (host.to_string(), port))
}

fn http_url(field: &str, text: &str) -> Result<ProbeTarget, SpecError> {
    let bad = |why: &str| {
        field_error(
            field,
            format!("{text:?} {why}; use e.g. \"http://127.0.0.1:9090/readiness\""),
        )
    };
    let Some(rest) = text.strip_prefix("http://") else {
        if text.starts_with("https://") {
            return Err(bad("uses https: probes speak plain HTTP, like a kubelet httpGet probe, to a container of this pod"));
        }
        return Err(bad("is not an http:// URL"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) || authority.contains('@') {
        return Err(bad("has spaces, control characters or user information"));
    }
    let (host, port) = if authority.starts_with('[') || authority.matches(':').count() == 1 {
        host_port(authority).ok_or_else(|| bad("has a bad host or port"))?
    } else {
        host_port(&format!("{authority}:80")).ok_or_else(|| bad("has a bad host"))?
    };
    Ok(ProbeTarget::Http { host, port, path })
}

fn stop_action(field: &str, v: &Value) -> Result<StopAction, SpecError> {
    let object = v.as_object().ok_or_else(|| {
        wrong_type(
            field,
            "{\"signal\": \"SIGTERM\"} or {\"http\": {\"port\": 15020}}",
            v,
        )
    })?;
    let mut action = None;
    for (key, value) in object {
        let next = match key.as_str() {
            "signal" => StopAction::Signal(signal(&format!("{field}.signal"), value)?),
            "http" => StopAction::Http(http_quit(&format!("{field}.http"), value)?),
            _ => return Err(unknown_field(field, key, &["signal", "http"])),
        };
        if action.replace(next).is_some() {
            return Err(field_error(
                field,
                "give either \"signal\" or \"http\", not both".into(),
            ));
        }
    }
    action.ok_or_else(|| field_error(field, "give either \"signal\" or \"http\"".into()))
}

fn http_quit(field: &str, v: &Value) -> Result<HttpQuit, SpecError> {
    let object = v
        .as_object()
        .ok_or_else(|| wrong_type(field, "an object such as {\"port\": 15020}", v))?;
    let mut quit = HttpQuit {
        port: 0,
        path: "/quitquitquit".into(),
        method: "POST".into(),
        timeout: Duration::from_secs(5),
    };
    for (key, value) in object {
        let f = format!("{field}.{key}");
        match key.as_str() {
            "port" => quit.port = integer(&f, value, 1, 65535)? as u16,
            "path" => {
                quit.path = string(&f, value)?;
                if !quit.path.starts_with('/') {
                    return Err(field_error(
                        &f,
                        format!("{:?} must start with \"/\"", quit.path),
                    ));
                }
            }
            "method" => {
                quit.method = string(&f, value)?.to_ascii_uppercase();
                if !["GET", "POST", "PUT", "DELETE"].contains(&quit.method.as_str()) {
                    return Err(field_error(
                        &f,
                        format!("{:?} is not GET, POST, PUT or DELETE", quit.method),
                    ));
                }
            }
            "timeout" => quit.timeout = duration(&f, value)?,
            _ => {
                return Err(unknown_field(
                    field,
                    key,
                    &["port", "path", "method", "timeout"],
                ))
            }
        }
    }
    if quit.port == 0 {
        return Err(field_error(
            field,
            "\"port\" is missing (the port the sidecar serves its quit endpoint on)".into(),
        ));
    }
    Ok(quit)
}

fn rewrites(field: &str, v: &Value) -> Result<Rewrites, SpecError> {
    let object = v
        .as_object()
        .ok_or_else(|| wrong_type(field, "an object such as {\"SIGTERM\": \"SIGQUIT\"}", v))?;
    let mut rewrites = Rewrites::default();
    for (from, to) in object {
        let from = signal(field, &Value::from(from.as_str()))?;
        rewrites.insert(
            from,
            signal(&format!("{field}.{}", signals::name(from)), to)?,
        );
    }
    Ok(rewrites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).unwrap_err().0
    }

    #[test]
    fn an_empty_object_is_a_plain_init_with_all_defaults() {
        let spec = parse("{}").unwrap();
        assert_eq!(spec, Spec::default());
        assert!(!spec.coordinates());
        assert_eq!(spec.term_timeout, Duration::from_secs(30));
        assert_eq!(spec.killed_by_stop_dep_exit_code, 137);
        assert_eq!(spec.stop_action(), StopAction::Signal(libc::SIGTERM));
    }

    #[test]
    fn the_original_projects_specs_parse_with_the_same_meaning() {
        let s = parse(r#"{"stopDeps":["main-container"]}"#).unwrap();
        assert_eq!(s.stop_deps, ["main-container"]);
        assert!(s.coordinates());

        let s = parse(r#"{"startDeps":["cloud-sql-proxy"],"stopDelay":"10s"}"#).unwrap();
        assert_eq!(
            s.start_deps,
            [Dependency::Container {
                name: "cloud-sql-proxy".into(),
                condition: Condition::Ready
            }]
        );
        assert_eq!(s.stop_delay, Duration::from_secs(10));

        let s = parse(r#"{"whenStopDepExited":{"signal":15},"termTimeout":"5s","terminatedByStopDepExitCode":-1}"#)
            .unwrap();
        assert_eq!(s.stop_action(), StopAction::Signal(15));
        assert_eq!(s.term_timeout, Duration::from_secs(5));
        assert_eq!(s.terminated_by_stop_dep_exit_code, -1);
    }

    #[test]
    fn every_field_parses() {
        let s = parse(
            r#"{"startDeps":["a",{"name":"b","condition":"completed"},{"name":"c","condition":"started"}],
                "startTimeout":"1m30s","stopDeps":["x","y"],"stopOn":"all","termWaitsForStopDeps":false,
                "stopDelay":"250ms","termSignal":"QUIT","termTimeout":"1s",
                "whenStopDepExited":{"http":{"port":15020,"method":"post","timeout":"2s"}},
                "terminatedByStopDepExitCode":3,"killedByStopDepExitCode":9,
                "successExitCodes":[143,1],"rewriteSignals":{"SIGTERM":"SIGINT","10":12}}"#,
        )
        .unwrap();
        assert_eq!(
            s.start_deps[1].container(),
            Some(("b", Condition::Completed))
        );
        assert_eq!(s.start_deps[2].container(), Some(("c", Condition::Started)));
        assert_eq!(s.start_timeout, Some(Duration::from_secs(90)));
        assert_eq!(s.stop_on, StopOn::All);
        assert!(!s.term_waits_for_stop_deps);
        assert_eq!(s.term_signal, libc::SIGQUIT);
        let StopAction::Http(h) = s.stop_action() else {
            panic!()
        };
        assert_eq!(
            (h.port, h.path.as_str(), h.method.as_str()),
            (15020, "/quitquitquit", "POST")
        );
        assert_eq!(s.success_exit_codes, [143, 1]);
        assert_eq!(s.rewrite_signals.apply(15), 2);
        assert_eq!(s.rewrite_signals.apply(10), 12);
    }

    #[test]
    fn normalised_json_parses_back_to_the_same_spec() {
        let text = r#"{"startDeps":[{"name":"b","condition":"completed"}],"startTimeout":"1m 30s",
            "whenStopDepExited":{"http":{"port":8080}},"rewriteSignals":{"TERM":"QUIT"},"stopDelay":"1s 500ms"}"#;
        let spec = parse(text).unwrap();
        let again = parse(&spec.to_json().to_string()).unwrap();
        assert_eq!(spec, again);
        assert_eq!(spec.to_json()["termSignal"], "SIGTERM");
        assert_eq!(spec.to_json()["startTimeout"], "1m 30s");
    }

    #[test]
    fn misspelt_fields_get_a_suggestion() {
        assert_eq!(
            err(r#"{"stopDep":["a"]}"#),
            r#"unknown field "stopDep", did you mean "stopDeps"?"#
        );
        assert_eq!(
            err(r#"{"startdeps":["a"]}"#),
            r#"unknown field "startdeps", did you mean "startDeps"?"#
        );
        assert_eq!(
            err(r#"{"startDeps":[{"name":"a","conditon":"ready"}]}"#),
            r#"unknown field "conditon" in "startDeps[0]", did you mean "condition"?"#
        );
        assert!(err(r#"{"xyzzy":1}"#).starts_with(
            r#"unknown field "xyzzy"; valid fields are: name, restartPolicy, source, startDeps, "#
        ));
    }

    #[test]
    fn wrong_types_name_the_field_and_the_expected_type() {
        assert_eq!(
            err(r#"{"stopDelay":10}"#),
            r#"field "stopDelay": must be a duration string such as "10s", not a number (10)"#
        );
        assert_eq!(
            err(r#"{"stopDeps":"main"}"#),
            r#"field "stopDeps": must be a list, not a string ("main")"#
        );
        assert_eq!(
            err(r#"{"termWaitsForStopDeps":"yes"}"#),
            r#"field "termWaitsForStopDeps": must be true or false, not a string ("yes")"#
        );
        assert!(err(r#"{"startDeps":[1]}"#)
            .starts_with(r#"field "startDeps[0]": must be a container name"#));
        assert!(err("[]").starts_with("must be a JSON object"));
        assert!(err("{").starts_with("not valid JSON: "));
    }

    #[test]
    fn bad_values_are_refused_with_a_hint() {
        assert!(err(r#"{"startTimeout":"10"}"#)
            .starts_with(r#"field "startTimeout": "10" is not a duration"#));
        assert!(err(r#"{"termSignal":"SIGFOO"}"#)
            .starts_with(r#"field "termSignal": unknown signal "SIGFOO"; use a name"#));
        assert_eq!(
            err(r#"{"stopOn":"some"}"#),
            r#"field "stopOn": "some" is not "any" or "all""#
        );
        assert_eq!(
            err(r#"{"killedByStopDepExitCode":256}"#),
            r#"field "killedByStopDepExitCode": 256 is out of range (0 to 255)"#
        );
        assert!(err(r#"{"startDeps":[{"name":"a","condition":"healthy"}]}"#)
            .contains(r#""healthy" is not one of"#));
        assert!(err(r#"{"whenStopDepExited":{"http":{}}}"#).contains(r#""port" is missing"#));
        assert!(
            err(r#"{"whenStopDepExited":{"http":{"port":1,"path":"quit"}}}"#)
                .contains("must start with")
        );
        assert!(
            err(r#"{"whenStopDepExited":{"signal":"TERM","http":{"port":1}}}"#)
                .contains("not both")
        );
        assert!(err(r#"{"whenStopDepExited":{}}"#).contains(r#"either "signal" or "http""#));
    }

    #[test]
    fn duplicate_and_empty_names_are_refused() {
        assert_eq!(
            err(r#"{"startDeps":["a",{"name":"a"}]}"#),
            r#"field "startDeps": "a" is listed twice"#
        );
        assert_eq!(
            err(r#"{"stopDeps":["a","a"]}"#),
            r#"field "stopDeps": "a" is listed twice"#
        );
        assert_eq!(
            err(r#"{"stopDeps":[""]}"#),
            r#"field "stopDeps[0]": container name is empty"#
        );
        assert_eq!(
            err(r#"{"startDeps":[{"condition":"ready"}]}"#),
            r#"field "startDeps[0]": "name" is missing"#
        );
    }

    #[test]
    fn the_three_o_alias_is_accepted_but_must_agree() {
        assert_eq!(select(Some("{}"), None), Ok(Some(("{}".into(), false))));
        assert_eq!(select(None, Some("{}")), Ok(Some(("{}".into(), true))));
        assert_eq!(
            select(Some("{}"), Some("{}")),
            Ok(Some(("{}".into(), false)))
        );
        assert_eq!(select(Some(" "), None), Ok(None));
        assert!(select(Some("{}"), Some("{\"stopDeps\":[\"a\"]}"))
            .unwrap_err()
            .0
            .contains("keep only"));
    }

    #[test]
    fn probes_parse_with_their_defaults_and_options() {
        let s = parse(
            r#"{"startDeps":[{"tcp":"127.0.0.1:5432"},{"http":"http://localhost:9090/readiness","period":"1s","timeout":"2s"},
                {"file":"/shared/ready"},{"tcp":"[::1]:80"},{"http":"http://10.0.0.1"},"proxy"]}"#,
        )
        .unwrap();
        let probes: Vec<&Probe> = s.probes().collect();
        assert_eq!(
            probes[0].target,
            ProbeTarget::Tcp {
                host: "127.0.0.1".into(),
                port: 5432
            }
        );
        assert_eq!(
            (probes[0].period, probes[0].timeout),
            (DEFAULT_PROBE_PERIOD, DEFAULT_PROBE_TIMEOUT)
        );
        assert_eq!(
            probes[1].target,
            ProbeTarget::Http {
                host: "localhost".into(),
                port: 9090,
                path: "/readiness".into()
            }
        );
        assert_eq!(probes[1].period, Duration::from_secs(1));
        assert_eq!(probes[2].target, ProbeTarget::File("/shared/ready".into()));
        assert_eq!(probes[3].target.to_string(), "tcp [::1]:80");
        assert_eq!(probes[4].target.to_string(), "http://10.0.0.1:80/");
        assert_eq!(s.named_deps(), ["proxy"]);
        assert!(s.coordinates());
        // The normalised form parses back to the same spec.
        assert_eq!(
            parse(&s.to_json().to_string()).unwrap().start_deps,
            s.start_deps
        );
    }

    #[test]
    fn bad_probes_say_what_to_write() {
        assert!(err(r#"{"startDeps":[{"tcp":"localhost"}]}"#)
            .contains(r#"is not HOST:PORT; use e.g. "127.0.0.1:5432""#));
        assert!(err(r#"{"startDeps":[{"tcp":"h:0"}]}"#).contains("is not HOST:PORT"));
        assert!(
            err(r#"{"startDeps":[{"http":"https://x:1/"}]}"#).contains("probes speak plain HTTP")
        );
        assert!(err(r#"{"startDeps":[{"http":"ftp://x"}]}"#).contains("is not an http:// URL"));
        assert!(err(r#"{"startDeps":[{"file":"ready"}]}"#).contains("is not an absolute path"));
        assert!(err(r#"{"startDeps":[{"tcp":"a:1","period":"1ms"}]}"#).contains("at least 10ms"));
        assert!(err(r#"{"startDeps":[{"name":"a","tcp":"a:1"}]}"#).contains("not both"));
        assert!(err(r#"{"startDeps":[{"tcp":"a:1","http":"http://a"}]}"#)
            .contains("one probe per dependency"));
        assert_eq!(
            err(r#"{"startDeps":[{"tpc":"a:1"}]}"#),
            r#"unknown field "tpc" in "startDeps[0]", did you mean "tcp"?"#
        );
        assert_eq!(
            err(r#"{"startDeps":[{"tcp":"a:1"},{"tcp":"a:1"}]}"#),
            r#"field "startDeps": "tcp a:1" is listed twice"#
        );
        assert!(err(r#"{"startDeps":[{"name":"a","period":"1s"}]}"#).contains("belongs to probes"));
    }

    #[test]
    fn name_restart_policy_and_source() {
        let s = parse(r#"{"name":"main-container","restartPolicy":"OnFailure","source":"local"}"#)
            .unwrap();
        assert_eq!(s.name.as_deref(), Some("main-container"));
        assert_eq!(s.restart_policy, Some(RestartPolicy::OnFailure));
        assert_eq!(s.source, SourceChoice::Local);
        assert_eq!(
            parse("{}").unwrap().local_restart_policy(),
            RestartPolicy::Never
        );
        assert!(err(r#"{"restartPolicy":"never"}"#).contains("copy the pod's restartPolicy"));
        assert!(err(r#"{"source":"kube"}"#).contains(r#"is not "auto", "api" or "local""#));
        assert!(err(r#"{"name":"Main"}"#).contains("lower-case letters"));
        assert!(err(r#"{"stopDeps":["a/b"]}"#).contains("is not a container name"));
    }
}
