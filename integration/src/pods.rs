//! Pod manifests and container states for scenarios, as the API server
//! would serve them.

use serde_json::{json, Value};

pub struct PodBuilder {
    pod: Value,
}

/// A pod in `namespace` with no containers yet and `restartPolicy: Never`.
pub fn pod(namespace: &str, name: &str) -> PodBuilder {
    PodBuilder {
        pod: json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
            "spec": {"restartPolicy": "Never", "containers": [], "initContainers": []},
            "status": {"phase": "Pending", "containerStatuses": [], "initContainerStatuses": []}
        }),
    }
}

impl PodBuilder {
    pub fn restart_policy(mut self, policy: &str) -> PodBuilder {
        self.pod["spec"]["restartPolicy"] = json!(policy);
        self
    }

    /// A regular container; `spec` becomes its literal `KOORDINATOR_SPEC`.
    pub fn container(mut self, name: &str, spec: Option<&str>) -> PodBuilder {
        self.add("containers", "containerStatuses", name, spec, None);
        self
    }

    /// An init container; `sidecar` makes it a native sidecar (`restartPolicy: Always`).
    pub fn init_container(mut self, name: &str, sidecar: bool) -> PodBuilder {
        self.add(
            "initContainers",
            "initContainerStatuses",
            name,
            None,
            sidecar.then_some("Always"),
        );
        self
    }

    fn add(
        &mut self,
        list: &str,
        statuses: &str,
        name: &str,
        spec: Option<&str>,
        restart: Option<&str>,
    ) {
        let mut c = json!({"name": name, "image": "example.com/image:1"});
        if let Some(spec) = spec {
            c["env"] = json!([{"name": "KOORDINATOR_SPEC", "value": spec}]);
        }
        if let Some(r) = restart {
            c["restartPolicy"] = json!(r);
        }
        self.pod["spec"][list].as_array_mut().unwrap().push(c);
        let mut status = waiting();
        status["name"] = json!(name);
        self.pod["status"][statuses]
            .as_array_mut()
            .unwrap()
            .push(status);
    }

    pub fn build(self) -> Value {
        self.pod
    }
}

pub fn waiting() -> Value {
    json!({"ready": false, "started": false, "restartCount": 0,
           "state": {"waiting": {"reason": "ContainerCreating"}}})
}

pub fn running(ready: bool) -> Value {
    json!({"ready": ready, "started": true, "restartCount": 0,
           "state": {"running": {"startedAt": "2026-11-24T12:00:00Z"}}})
}

pub fn terminated(code: i32) -> Value {
    let reason = if code == 0 { "Completed" } else { "Error" };
    json!({"ready": false, "started": false, "restartCount": 0,
           "state": {"terminated": {"exitCode": code, "reason": reason}}})
}

/// Sets one container's status (regular or init) in a pod value.
pub fn set_status(pod: &mut Value, container: &str, state: Value) {
    for list in ["containerStatuses", "initContainerStatuses"] {
        if let Some(statuses) = pod["status"][list].as_array_mut() {
            if let Some(s) = statuses.iter_mut().find(|s| s["name"] == container) {
                let restarts = s["restartCount"].as_i64().unwrap_or(0);
                *s = state;
                s["name"] = json!(container);
                s["restartCount"] = json!(restarts);
                return;
            }
        }
    }
    panic!("set_status: no container {container}");
}
