//! The parts of a Pod that koordinator reads, and what they say about the
//! containers it depends on.
//!
//! Both `containerStatuses` and `initContainerStatuses` count: native sidecars
//! (Kubernetes 1.29+) are init containers with `restartPolicy: Always`.

use crate::rules::facts::{Observation, RestartPolicy, Stage};
use crate::rules::spec::{self, Spec};
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use std::time::Duration;

/// Kubernetes writes `null` for some empty lists; treat it as empty.
pub fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Pod {
    pub metadata: Metadata,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub deletion_timestamp: Option<String>,
    pub deletion_grace_period_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    #[serde(deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container>,
    pub restart_policy: Option<String>,
    pub termination_grace_period_seconds: Option<i64>,
    pub host_network: Option<bool>,
    pub node_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
    pub restart_policy: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct EnvVar {
    pub name: String,
    /// Only literal values; `valueFrom` cannot be resolved from the pod spec.
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(deserialize_with = "null_as_default")]
    pub init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub ready: bool,
    pub started: Option<bool>,
    pub state: ContainerState,
    pub restart_count: i64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ContainerState {
    pub waiting: Option<IgnoredAny>,
    pub running: Option<IgnoredAny>,
    pub terminated: Option<Terminated>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i64,
    pub reason: Option<String>,
}

impl Pod {
    /// All container names, regular ones first.
    pub fn container_names(&self) -> Vec<&str> {
        self.spec
            .containers
            .iter()
            .chain(&self.spec.init_containers)
            .map(|c| c.name.as_str())
            .collect()
    }

    fn status(&self, name: &str) -> Option<&ContainerStatus> {
        self.status
            .container_statuses
            .iter()
            .chain(&self.status.init_container_statuses)
            .find(|s| s.name == name)
    }

    /// The pod's own `restartPolicy` (Always when absent, as the API defaults it).
    pub fn pod_policy(&self) -> RestartPolicy {
        self.spec
            .restart_policy
            .as_deref()
            .and_then(RestartPolicy::parse)
            .unwrap_or(RestartPolicy::Always)
    }

    /// The restart policy that applies to one container.
    pub fn restart_policy(&self, name: &str) -> RestartPolicy {
        let init = self.spec.init_containers.iter().find(|c| c.name == name);
        match init {
            None => self.pod_policy(),
            // A native sidecar.
            Some(c) if c.restart_policy.as_deref() == Some("Always") => RestartPolicy::Always,
            // Plain init containers are retried on failure unless the pod never restarts.
            Some(_) if self.pod_policy() == RestartPolicy::Never => RestartPolicy::Never,
            Some(_) => RestartPolicy::OnFailure,
        }
    }

    /// Succeeded or Failed: nothing in it will run again.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// What the pod's status says about one container; `None` when it has no status yet.
    pub fn observe(&self, name: &str) -> Option<Observation> {
        let s = self.status(name)?;
        let stage = if let Some(t) = &s.state.terminated {
            Stage::Exited {
                code: t.exit_code.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                abrupt: false,
            }
        } else if s.state.running.is_some() || s.started == Some(true) || s.ready {
            Stage::Running { ready: s.ready }
        } else {
            Stage::Waiting
        };
        Some(Observation {
            restart: s.restart_count.clamp(0, u32::MAX as i64) as u32,
            stage,
        })
    }

    /// How long the kubelet gives the containers to stop: the deletion's
    /// grace period once the pod is being deleted, else the spec's
    /// (30 s when absent, the API's default). The kubelet never uses less than 2 s.
    pub fn grace_period(&self) -> Duration {
        let seconds = self
            .metadata
            .deletion_grace_period_seconds
            .or(self.spec.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(seconds.clamp(2, 365 * 24 * 3600) as u64)
    }

    fn literal_spec(&self, container: &Container) -> Option<String> {
        container
            .env
            .iter()
            .find(|e| e.name == spec::ENV)
            .or_else(|| container.env.iter().find(|e| e.name == spec::ENV_ALIAS))
            .and_then(|e| e.value.clone())
    }

    /// The containers whose literal spec is `own_spec`: this one, normally.
    pub fn containers_with_spec(&self, own_spec: &str) -> Vec<&str> {
        self.spec
            .containers
            .iter()
            .chain(&self.spec.init_containers)
            .filter(|c| {
                self.literal_spec(c)
                    .is_some_and(|s| s.trim() == own_spec.trim())
            })
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// A problem with the pod as a whole, found on the first snapshot. Exit 2.
#[derive(Debug, PartialEq, Eq)]
pub struct PodError(pub String);

impl std::fmt::Display for PodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the spec against the pod: every dependency names a real
/// container, `name` and `restartPolicy` agree with the pod, and the start
/// dependencies of the pod's containers form no cycle through this one.
/// `own_spec` is this container's spec text. Returns this container's name
/// when it can be told.
pub fn validate(pod: &Pod, spec: &Spec, own_spec: &str) -> Result<Option<String>, PodError> {
    let names = pod.container_names();
    let deps = spec
        .start_deps
        .iter()
        .filter_map(|d| d.container().map(|(n, _)| ("start", n)))
        .chain(spec.stop_deps.iter().map(|n| ("stop", n.as_str())));
    for (kind, dep) in deps {
        if !names.contains(&dep) {
            return Err(PodError(format!(
                "{kind} dependency {dep:?} is not a container of pod {:?}{}; its containers are: {}",
                pod.metadata.name,
                hint(dep, &names),
                names.join(", ")
            )));
        }
    }
    let found = pod.containers_with_spec(own_spec);
    let me = match (&spec.name, found.as_slice()) {
        (Some(name), _) if !names.contains(&name.as_str()) => {
            return Err(PodError(format!(
                "\"name\" is {name:?}, which is not a container of pod {:?}{}; its containers are: {}",
                pod.metadata.name,
                hint(name, &names),
                names.join(", ")
            )))
        }
        (Some(name), [one]) if name != one => {
            return Err(PodError(format!(
                "\"name\" is {name:?}, but this spec belongs to container {one:?} of pod {:?}: set \"name\" to {one:?} or remove it",
                pod.metadata.name
            )))
        }
        (Some(name), _) => Some(name.clone()),
        (None, [one]) => Some(one.to_string()),
        (None, _) => None,
    };
    if let Some(policy) = spec.restart_policy {
        if policy != pod.pod_policy() {
            return Err(PodError(format!(
                "\"restartPolicy\" is {:?}, but pod {:?} has restartPolicy {:?}: copy the pod's value, or remove the field (with API access the pod's own is used)",
                policy.as_str(),
                pod.metadata.name,
                pod.pod_policy().as_str()
            )));
        }
    }
    if let Some(cycle) = start_cycle(pod, own_spec) {
        return Err(PodError(format!(
            "the start dependencies of pod {:?} form a cycle: {}; none of these containers can ever start",
            pod.metadata.name,
            cycle.join(" -> ")
        )));
    }
    Ok(me)
}

fn hint(wrong: &str, names: &[&str]) -> String {
    spec::nearest(wrong, names)
        .map(|n| format!(" (did you mean {n:?}?)"))
        .unwrap_or_default()
}

/// Finds a cycle of start dependencies through a container whose literal spec
/// is `own_spec`, reading the other containers' specs from the pod spec.
fn start_cycle(pod: &Pod, own_spec: &str) -> Option<Vec<String>> {
    let containers: Vec<&Container> = pod
        .spec
        .containers
        .iter()
        .chain(&pod.spec.init_containers)
        .collect();
    let edges: Vec<(String, Vec<String>)> = containers
        .iter()
        .map(|c| {
            let deps = pod
                .literal_spec(c)
                .map(|text| start_dep_names(&text))
                .unwrap_or_default();
            (c.name.clone(), deps)
        })
        .collect();
    for start in pod.containers_with_spec(own_spec) {
        let mut path = vec![start.to_string()];
        if find_path_back(&edges, start, &mut path) {
            return Some(path);
        }
    }
    None
}

fn find_path_back(edges: &[(String, Vec<String>)], start: &str, path: &mut Vec<String>) -> bool {
    let current = path.last().cloned().unwrap_or_default();
    let Some((_, next)) = edges.iter().find(|(n, _)| *n == current) else {
        return false;
    };
    for n in next {
        if n == start {
            path.push(n.clone());
            return true;
        }
        if path.contains(n) {
            continue;
        }
        path.push(n.clone());
        if find_path_back(edges, start, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// The start dependency names in another container's spec, read leniently:
/// that container reports its own spec errors.
fn start_dep_names(text: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    value["startDeps"]
        .as_array()
        .map(|deps| {
            deps.iter()
                .filter_map(|d| {
                    d.as_str()
                        .or_else(|| d["name"].as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_real_api_server_pod_deserializes_into_observations() {
        let p = pod(json!({
            "metadata": {"name": "job-x", "namespace": "default", "resourceVersion": "42", "uid": "u",
                         "deletionGracePeriodSeconds": 5},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 60,
                     "containers": [{"name": "main", "image": "busybox",
                     "env": [{"name": "KOORDINATOR_SPEC", "value": "{}"}, {"name": "X", "valueFrom": {}}]}],
                     "initContainers": null},
            "status": {"phase": "Running", "containerStatuses": [{"name": "main", "ready": true, "started": true,
                       "restartCount": 2, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, "image": "b"}]}
        }));
        assert_eq!(p.metadata.resource_version, "42");
        assert_eq!(
            p.observe("main"),
            Some(Observation {
                restart: 2,
                stage: Stage::Running { ready: true }
            })
        );
        assert_eq!(p.observe("other"), None);
        assert_eq!(p.container_names(), ["main"]);
        assert_eq!(
            p.grace_period(),
            Duration::from_secs(5),
            "the deletion's grace wins"
        );
        assert_eq!(p.containers_with_spec(" {} "), ["main"]);
    }

    #[test]
    fn terminated_and_waiting_statuses() {
        let p = pod(json!({"status": {"initContainerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}, "restartCount": 1},
            {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ]}}));
        assert_eq!(
            p.observe("a"),
            Some(Observation {
                restart: 1,
                stage: Stage::Exited {
                    code: 3,
                    abrupt: false
                }
            })
        );
        assert_eq!(p.observe("b").unwrap().stage, Stage::Waiting);
        assert_eq!(pod(json!({})).grace_period(), Duration::from_secs(30));
    }

    #[test]
    fn restart_policies_per_container() {
        let p = pod(json!({
            "spec": {"restartPolicy": "Never", "initContainers": [{"name": "proxy", "restartPolicy": "Always"}, {"name": "setup"}],
                     "containers": [{"name": "main"}]}
        }));
        assert_eq!(p.restart_policy("proxy"), RestartPolicy::Always);
        assert_eq!(p.restart_policy("setup"), RestartPolicy::Never);
        assert_eq!(p.restart_policy("main"), RestartPolicy::Never);
        let p = pod(
            json!({"spec": {"restartPolicy": "OnFailure", "initContainers": [{"name": "setup"}]}}),
        );
        assert_eq!(p.restart_policy("setup"), RestartPolicy::OnFailure);
        assert_eq!(pod(json!({})).pod_policy(), RestartPolicy::Always);
    }

    fn two_containers() -> Pod {
        pod(
            json!({"metadata": {"name": "web"}, "spec": {"restartPolicy": "Never", "containers": [
            {"name": "proxy", "env": [{"name": "KOORDINATOR_SPEC", "value": r#"{"stopDeps":["main"]}"#}]},
            {"name": "main"}]}}),
        )
    }

    #[test]
    fn unknown_dependency_names_list_the_real_containers() {
        let p = two_containers();
        let spec = spec::parse(r#"{"startDeps":["prxy"]}"#).unwrap();
        assert_eq!(
            validate(&p, &spec, "").unwrap_err().0,
            r#"start dependency "prxy" is not a container of pod "web" (did you mean "proxy"?); its containers are: proxy, main"#
        );
        let spec = spec::parse(r#"{"stopDeps":["zzz"]}"#).unwrap();
        assert!(validate(&p, &spec, "")
            .unwrap_err()
            .0
            .starts_with(r#"stop dependency "zzz""#));
    }

    #[test]
    fn own_name_is_found_and_checked() {
        let p = two_containers();
        let text = r#"{"stopDeps":["main"]}"#;
        let spec = spec::parse(text).unwrap();
        assert_eq!(validate(&p, &spec, text), Ok(Some("proxy".into())));
        assert_eq!(
            validate(&p, &spec, "{}"),
            Ok(None),
            "a spec found nowhere names nothing"
        );
        let text = r#"{"name":"main","stopDeps":["main"]}"#;
        let spec = spec::parse(text).unwrap();
        assert_eq!(
            validate(&p, &spec, text),
            Ok(Some("main".into())),
            "valueFrom specs trust the name"
        );
        let p2 = pod(json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "proxy", "env": [{"name": "KOORDINATOR_SPEC", "value": text}]}, {"name": "main"}]}}));
        assert_eq!(
            validate(&p2, &spec, text).unwrap_err().0,
            r#""name" is "main", but this spec belongs to container "proxy" of pod "web": set "name" to "proxy" or remove it"#
        );
        let spec = spec::parse(r#"{"name":"mian"}"#).unwrap();
        assert!(validate(&p, &spec, "")
            .unwrap_err()
            .0
            .contains(r#"(did you mean "main"?)"#));
    }

    #[test]
    fn a_restart_policy_field_must_match_the_pod() {
        let p = two_containers();
        let spec = spec::parse(r#"{"restartPolicy":"OnFailure"}"#).unwrap();
        assert!(validate(&p, &spec, "")
            .unwrap_err()
            .0
            .contains(r#"but pod "web" has restartPolicy "Never""#));
        let spec = spec::parse(r#"{"restartPolicy":"Never"}"#).unwrap();
        assert!(validate(&p, &spec, "").is_ok());
    }

    #[test]
    fn a_cycle_of_start_dependencies_is_reported() {
        let a = r#"{"startDeps":["b",{"tcp":"127.0.0.1:1"}]}"#;
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "env": [{"name": "KOORDINATOR_SPEC", "value": a}]},
            {"name": "b", "env": [{"name": "KOOORDINATOR_SPEC", "value": r#"{"startDeps":[{"name":"c"}]}"#}]},
            {"name": "c", "env": [{"name": "KOORDINATOR_SPEC", "value": r#"{"startDeps":["a"]}"#}]},
        ]}}));
        let spec = spec::parse(a).unwrap();
        assert_eq!(
            validate(&p, &spec, a).unwrap_err().0,
            r#"the start dependencies of pod "p" form a cycle: a -> b -> c -> a; none of these containers can ever start"#
        );
    }

    #[test]
    fn a_chain_is_not_a_cycle() {
        let a = r#"{"startDeps":["b"]}"#;
        let p = pod(json!({"spec": {"containers": [
            {"name": "a", "env": [{"name": "KOORDINATOR_SPEC", "value": a}]},
            {"name": "b", "env": [{"name": "KOORDINATOR_SPEC", "value": r#"{"startDeps":["c"]}"#}]},
            {"name": "c", "env": [{"name": "KOORDINATOR_SPEC", "value": "not json"}]},
        ]}}));
        assert_eq!(
            validate(&p, &spec::parse(a).unwrap(), a),
            Ok(Some("a".into()))
        );
    }
}
