//! The parts of a Pod that koordinator reads, and what they mean for a dependency.
//!
//! Both `containerStatuses` and `initContainerStatuses` count: native sidecars
//! (Kubernetes 1.29+) are init containers with `restartPolicy: Always`.

use crate::spec::{self, Condition, Dependency, Spec};
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

/// Kubernetes writes `null` for some empty lists; treat it as empty.
fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
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
    pub resource_version: String,
    pub deletion_timestamp: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    #[serde(deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container>,
    pub restart_policy: Option<String>,
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
    pub restart_count: i32,
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
    pub exit_code: i32,
    pub reason: Option<String>,
}

/// What the kubelet does when a container ends, for one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
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

    fn pod_policy(&self) -> RestartPolicy {
        match self.spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
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

    fn is_finished(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// Whether a start dependency holds right now.
    pub fn holds(&self, dep: &Dependency) -> bool {
        let Some(s) = self.status(&dep.name) else {
            return false;
        };
        let completed = s
            .state
            .terminated
            .as_ref()
            .is_some_and(|t| t.exit_code == 0);
        match dep.condition {
            Condition::Ready => s.ready,
            Condition::Started => s.started == Some(true) || s.state.running.is_some() || completed,
            Condition::Completed => completed,
        }
    }

    /// Whether a container has exited and will not be started again, so its
    /// dependents should stop. Under `OnFailure` a failed container will be
    /// restarted: its sidecar must stay up for the next attempt.
    pub fn exited_for_good(&self, name: &str) -> bool {
        let Some(t) = self.status(name).and_then(|s| s.state.terminated.as_ref()) else {
            return false;
        };
        match self.restart_policy(name) {
            _ if self.is_finished() => true,
            RestartPolicy::OnFailure => t.exit_code == 0,
            RestartPolicy::Never | RestartPolicy::Always => true,
        }
    }

    /// Whether a container terminated with a failure that no restart will
    /// repair, so a `completed` dependency on it can never hold.
    pub fn failed_for_good(&self, name: &str) -> Option<i32> {
        let t = self.status(name)?.state.terminated.as_ref()?;
        let final_ = self.is_finished() || self.restart_policy(name) == RestartPolicy::Never;
        (t.exit_code != 0 && final_).then_some(t.exit_code)
    }

    fn literal_spec(&self, container: &Container) -> Option<String> {
        container
            .env
            .iter()
            .find(|e| e.name == spec::ENV)
            .or_else(|| container.env.iter().find(|e| e.name == spec::ENV_ALIAS))
            .and_then(|e| e.value.clone())
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

/// Checks the spec against the pod: every dependency names a real container,
/// and the start dependencies of the pod's containers form no cycle through
/// this one. `own_spec` is this container's spec text, used to find which
/// container of the pod this is.
pub fn validate(pod: &Pod, spec: &Spec, own_spec: &str) -> Result<(), PodError> {
    let names = pod.container_names();
    let deps = spec
        .start_deps
        .iter()
        .map(|d| ("start", &d.name))
        .chain(spec.stop_deps.iter().map(|n| ("stop", n)));
    for (kind, dep) in deps {
        if !names.contains(&dep.as_str()) {
            let hint = spec::nearest(dep, &names)
                .map(|n| format!(" (did you mean {n:?}?)"))
                .unwrap_or_default();
            return Err(PodError(format!(
                "{kind} dependency {dep:?} is not a container of pod {:?}{hint}; its containers are: {}",
                pod.metadata.name,
                names.join(", ")
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
    Ok(())
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
    let me = containers
        .iter()
        .filter(|c| {
            pod.literal_spec(c)
                .is_some_and(|s| s.trim() == own_spec.trim())
        })
        .map(|c| c.name.clone());
    for start in me {
        let mut path = vec![start.clone()];
        if find_path_back(&edges, &start, &mut path) {
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

    fn dep(name: &str, condition: Condition) -> Dependency {
        Dependency {
            name: name.into(),
            condition,
        }
    }

    #[test]
    fn a_real_api_server_pod_deserializes() {
        let p = pod(json!({
            "metadata": {"name": "job-x", "namespace": "default", "resourceVersion": "42", "uid": "u"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox",
                     "env": [{"name": "KOORDINATOR_SPEC", "value": "{}"}, {"name": "X", "valueFrom": {}}]}],
                     "initContainers": null},
            "status": {"phase": "Running", "containerStatuses": [{"name": "main", "ready": true, "started": true,
                       "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, "image": "b"}]}
        }));
        assert_eq!(p.metadata.resource_version, "42");
        assert!(p.holds(&dep("main", Condition::Ready)));
        assert!(p.holds(&dep("main", Condition::Started)));
        assert!(!p.holds(&dep("main", Condition::Completed)));
        assert_eq!(p.container_names(), ["main"]);
    }

    #[test]
    fn init_container_statuses_count() {
        let p = pod(json!({
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "main"}]},
            "status": {"initContainerStatuses": [{"name": "proxy", "ready": true}]}
        }));
        assert!(p.holds(&dep("proxy", Condition::Ready)));
        assert_eq!(p.restart_policy("proxy"), RestartPolicy::Always);
    }

    fn terminated(policy: &str, code: i32) -> Pod {
        pod(json!({
            "spec": {"restartPolicy": policy, "containers": [{"name": "main"}, {"name": "proxy"}]},
            "status": {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}
        }))
    }

    #[test]
    fn exited_for_good_honours_the_restart_policy() {
        assert!(terminated("Never", 1).exited_for_good("main"));
        assert!(terminated("Never", 0).exited_for_good("main"));
        assert!(terminated("OnFailure", 0).exited_for_good("main"));
        // Will be restarted: the sidecar must stay for the next attempt.
        assert!(!terminated("OnFailure", 1).exited_for_good("main"));
        assert!(terminated("Always", 0).exited_for_good("main"));
        assert!(!terminated("Never", 0).exited_for_good("proxy"));
    }

    #[test]
    fn a_failed_completed_dependency_is_final_only_when_not_restarted() {
        assert_eq!(terminated("Never", 3).failed_for_good("main"), Some(3));
        assert_eq!(terminated("OnFailure", 3).failed_for_good("main"), None);
        assert_eq!(terminated("Never", 0).failed_for_good("main"), None);
    }

    #[test]
    fn unknown_dependency_names_list_the_real_containers() {
        let p = pod(
            json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "proxy"}, {"name": "main"}]}}),
        );
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
    fn a_cycle_of_start_dependencies_is_reported() {
        let a = r#"{"startDeps":["b"]}"#;
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
        assert_eq!(validate(&p, &spec::parse(a).unwrap(), a), Ok(()));
    }
}
