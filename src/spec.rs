//! The coordination spec: JSON in `KOORDINATOR_SPEC`.
//!
//! Parsed by hand from a `serde_json::Value` rather than with serde's derive,
//! so that every error names the field at fault (`startDeps[1].condition`)
//! and a misspelt field gets a suggestion instead of serde's generic list.

use crate::signals::{self, Rewrites};
use serde_json::{json, Map, Value};
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    pub condition: Condition,
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
    /// True when the spec needs the Kubernetes API at all.
    pub fn uses_api(&self) -> bool {
        !self.start_deps.is_empty() || !self.stop_deps.is_empty()
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
            .map(|d| json!({"name": d.name, "condition": d.condition.as_str()}))
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
        match f {
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
    no_duplicates(field, deps.iter().map(|d| &d.name))?;
    Ok(deps)
}

fn dependency(field: &str, v: &Value) -> Result<Dependency, SpecError> {
    let object = match v {
        Value::String(_) => {
            return Ok(Dependency {
                name: container_name(field, v)?,
                condition: Condition::Ready,
            })
        }
        Value::Object(o) => o,
        _ => {
            return Err(wrong_type(
                field,
                "a container name or {\"name\": ..., \"condition\": ...}",
                v,
            ))
        }
    };
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
            _ => return Err(unknown_field(field, key, &["name", "condition"])),
        }
    }
    let name = name.ok_or_else(|| field_error(field, "\"name\" is missing".into()))?;
    Ok(Dependency { name, condition })
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
        assert!(!spec.uses_api());
        assert_eq!(spec.term_timeout, Duration::from_secs(30));
        assert_eq!(spec.killed_by_stop_dep_exit_code, 137);
        assert_eq!(spec.stop_action(), StopAction::Signal(libc::SIGTERM));
    }

    #[test]
    fn the_original_projects_specs_parse_with_the_same_meaning() {
        let s = parse(r#"{"stopDeps":["main-container"]}"#).unwrap();
        assert_eq!(s.stop_deps, ["main-container"]);
        assert!(s.uses_api());

        let s = parse(r#"{"startDeps":["cloud-sql-proxy"],"stopDelay":"10s"}"#).unwrap();
        assert_eq!(
            s.start_deps,
            [Dependency {
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
        assert_eq!(s.start_deps[1].condition, Condition::Completed);
        assert_eq!(s.start_deps[2].condition, Condition::Started);
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
        assert!(err(r#"{"xyzzy":1}"#)
            .starts_with(r#"unknown field "xyzzy"; valid fields are: startDeps, "#));
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
}
