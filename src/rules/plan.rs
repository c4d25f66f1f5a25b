//! Which sources koordinator follows its dependencies through, and why
//! (SPEC §7.3). Pure: `run` and `--check` both ask it, so the start-up log
//! and the diagnosis always agree.

use crate::rules::spec::{Condition, Dependency, SourceChoice, Spec};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Named dependencies are followed through the API server.
    pub api: bool,
    /// Why the API is or is not used.
    pub why: String,
    /// Where this container publishes its state, and where dependencies
    /// that publish there are followed too.
    pub state_dir: Option<PathBuf>,
}

/// Decides the sources. `credentials` says whether this container has API
/// credentials (and which part is missing); `state_dir` is the state
/// directory in effect. `Err` is a configuration error (exit 2).
pub fn plan(
    spec: &Spec,
    credentials: Result<(), String>,
    state_dir: Option<PathBuf>,
) -> Result<Plan, String> {
    let named = spec.named_deps();
    let missing = credentials.as_ref().err().cloned();
    let (api, why) = if named.is_empty() {
        (false, "no dependency names a container".to_string())
    } else {
        match (spec.source, credentials) {
            (SourceChoice::Api, Err(missing)) => {
                return Err(format!(
                    "\"source\" is \"api\", but this container has no API credentials: {missing}. Mount a service-account token, or use \"source\": \"auto\" or \"local\" (README, \"Without API access\")"
                ))
            }
            (SourceChoice::Api, Ok(())) => (true, "\"source\": \"api\"".to_string()),
            (SourceChoice::Local, _) => (false, "\"source\": \"local\"".to_string()),
            (SourceChoice::Auto, Ok(())) => (true, "API credentials found".to_string()),
            (SourceChoice::Auto, Err(missing)) => (false, format!("no API credentials: {missing}")),
        }
    };
    if !api && !named.is_empty() {
        let ready = spec.start_deps.iter().find_map(|d| match d.container() {
            Some((name, Condition::Ready)) => Some(name),
            _ => None,
        });
        if let Some(name) = ready {
            return Err(format!(
                "start dependency {name:?} waits for the container to be ready, which only the API server knows (a kubelet probe result), and koordinator does not use the API here ({why}). \
                 Wait for its readiness endpoint with a probe instead, e.g. {{\"http\": \"http://127.0.0.1:9090/readiness\"}} or {{\"tcp\": \"127.0.0.1:5432\"}} (the port and path of its readinessProbe), \
                 or use {{\"name\": {name:?}, \"condition\": \"started\"}}, or give the pod API access (README, \"RBAC\")"
            ));
        }
        if state_dir.is_none() {
            let install = "install koordinator into a volume that the pod's containers share (`koordinator DIR` in an init container) and run it from there, or set KOORDINATOR_STATE_DIR to a directory on such a volume";
            return Err(match (spec.source, missing) {
                (SourceChoice::Auto, Some(missing)) => format!(
                    "no API credentials ({missing}), and no state directory: this spec follows containers ({}), which needs one or the other. \
                     Mount a service-account token (automountServiceAccountToken: true) with a Role that allows list and watch on pods, \
                     or coordinate without the API: {install} (README, \"Without API access\")",
                    named.join(", ")
                ),
                _ => format!(
                    "this spec follows containers ({}), which needs the API or the state directory; koordinator does not use the API here ({why}), and there is no state directory: {install}",
                    named.join(", ")
                ),
            });
        }
    }
    Ok(Plan {
        api,
        why,
        state_dir,
    })
}

impl Plan {
    /// One line per dependency: where it is followed, and why.
    pub fn describe(&self, spec: &Spec) -> Vec<String> {
        let dir = self
            .state_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let named = |what: String| {
            if self.api && self.state_dir.is_some() {
                format!("{what}: through the API ({}), and through the state directory {dir} if it publishes there", self.why)
            } else if self.api {
                format!("{what}: through the API ({}; no state directory)", self.why)
            } else {
                format!("{what}: through the state directory {dir} ({})", self.why)
            }
        };
        let mut lines: Vec<String> = spec
            .start_deps
            .iter()
            .map(|d| match d {
                Dependency::Container { .. } => named(format!("start dependency {}", d.describe())),
                Dependency::Probe(p) => format!(
                    "start dependency {}: probed every {}, {} per attempt (no API needed)",
                    p.target,
                    humantime::format_duration(p.period),
                    humantime::format_duration(p.timeout)
                ),
            })
            .collect();
        lines.extend(
            spec.stop_deps
                .iter()
                .map(|n| named(format!("stop dependency {n}"))),
        );
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::spec::parse;

    fn dir() -> Option<PathBuf> {
        Some("/k/koordinator-state".into())
    }

    #[test]
    fn auto_uses_the_api_when_credentials_exist() {
        let spec = parse(r#"{"startDeps":["proxy"]}"#).unwrap();
        let p = plan(&spec, Ok(()), dir()).unwrap();
        assert!(p.api);
        assert_eq!(
            p.describe(&spec),
            ["start dependency proxy (ready): through the API (API credentials found), and through the state directory /k/koordinator-state if it publishes there"]
        );
        let p = plan(&spec, Ok(()), None).unwrap();
        assert!(p.describe(&spec)[0].ends_with("(API credentials found; no state directory)"));
    }

    #[test]
    fn without_credentials_named_deps_use_the_state_directory() {
        let spec = parse(r#"{"stopDeps":["main"],"startDeps":[{"tcp":"127.0.0.1:1"}]}"#).unwrap();
        let p = plan(&spec, Err("no token".into()), dir()).unwrap();
        assert!(!p.api);
        assert_eq!(
            p.describe(&spec),
            [
                "start dependency tcp 127.0.0.1:1: probed every 250ms, 1s per attempt (no API needed)",
                "stop dependency main: through the state directory /k/koordinator-state (no API credentials: no token)"
            ]
        );
        let err = plan(&spec, Err("no token".into()), None).unwrap_err();
        assert!(
            err.starts_with("no API credentials (no token), and no state directory"),
            "{err}"
        );
        assert!(err.contains("Mount a service-account token"), "{err}");
        let spec = parse(r#"{"stopDeps":["main"],"source":"local"}"#).unwrap();
        let err = plan(&spec, Ok(()), None).unwrap_err();
        assert!(
            err.contains("(\"source\": \"local\"), and there is no state directory"),
            "{err}"
        );
    }

    #[test]
    fn probes_alone_never_need_the_api() {
        let spec = parse(r#"{"startDeps":[{"file":"/x"}],"source":"api"}"#).unwrap();
        let p = plan(&spec, Err("no token".into()), None).unwrap();
        assert!(!p.api);
    }

    #[test]
    fn ready_without_the_api_shows_the_probe_to_use() {
        let spec = parse(r#"{"startDeps":["proxy"]}"#).unwrap();
        let err = plan(&spec, Err("no token".into()), dir()).unwrap_err();
        assert!(
            err.starts_with("start dependency \"proxy\" waits for the container to be ready"),
            "{err}"
        );
        assert!(
            err.contains(r#"{"http": "http://127.0.0.1:9090/readiness"}"#),
            "{err}"
        );
        let spec = parse(r#"{"startDeps":["proxy"],"source":"local"}"#).unwrap();
        assert!(plan(&spec, Ok(()), dir())
            .unwrap_err()
            .contains("\"source\": \"local\""));
    }

    #[test]
    fn source_api_without_credentials_is_an_error() {
        let spec = parse(r#"{"stopDeps":["main"],"source":"api"}"#).unwrap();
        assert!(plan(&spec, Err("no token".into()), dir())
            .unwrap_err()
            .starts_with(
                "\"source\" is \"api\", but this container has no API credentials: no token"
            ));
    }
}
