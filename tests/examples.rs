//! Every manifest in examples/ is checked as a cluster would see it: the YAML
//! parses, each literal KOORDINATOR_SPEC is valid, every dependency names a
//! container of the pod and there is no start cycle, containers that run
//! /koordinator/koordinator mount the volume the install init container fills,
//! a Role, where given, grants exactly list and watch on pods, and every pod
//! passes the Pod Security "restricted" profile. The demo is also run in
//! podsim by the scenario tests.

use koordinator::rules::pod::Pod;
use koordinator_integration::harness::workspace_root;
use koordinator_integration::podsim::manifest::yaml_documents;
use serde_json::Value;

fn examples() -> Vec<(String, Vec<Value>)> {
    let mut found: Vec<_> = std::fs::read_dir(workspace_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let docs = yaml_documents(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, docs)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The pod (template) of a Pod, Job, Deployment or StatefulSet.
fn pod_of(doc: &Value) -> Option<Value> {
    let mut pod = match doc["kind"].as_str()? {
        "Pod" => doc.clone(),
        "Job" | "Deployment" | "StatefulSet" => doc["spec"]["template"].clone(),
        _ => return None,
    };
    pod["metadata"]["name"] = doc["metadata"]["name"].clone();
    Some(pod)
}

fn containers(pod: &Value) -> Vec<&Value> {
    let list = |k: &str| {
        pod["spec"][k]
            .as_array()
            .map(|a| a.iter().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    [list("initContainers"), list("containers")].concat()
}

#[test]
fn there_are_examples_for_every_recipe() {
    let names: Vec<String> = examples().into_iter().map(|(n, _)| n).collect();
    for recipe in [
        "job-demo.yaml",
        "cloud-sql-proxy-job.yaml",
        "least-privilege-pod.yaml",
        "envoy-quitquitquit-job.yaml",
        "ordered-deployment.yaml",
        "nginx-graceful-stop.yaml",
        "job-no-rbac.yaml",
    ] {
        assert!(
            names.contains(&recipe.to_string()),
            "examples/{recipe} is missing"
        );
    }
}

#[test]
fn every_spec_in_the_examples_is_valid_against_its_pod() {
    for (name, docs) in examples() {
        let pods: Vec<Value> = docs.iter().filter_map(pod_of).collect();
        assert_eq!(pods.len(), 1, "{name}: one workload per example");
        let pod_json = &pods[0];
        let pod: Pod =
            serde_json::from_value(pod_json.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for c in containers(pod_json) {
            let spec_env = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == "KOORDINATOR_SPEC");
            let Some(text) = spec_env.and_then(|e| e["value"].as_str()) else {
                continue;
            };
            let spec = koordinator::rules::spec::parse(text)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", c["name"]));
            koordinator::rules::pod::validate(&pod, &spec, text)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", c["name"]));
        }
    }
}

#[test]
fn containers_running_koordinator_mount_the_installed_copy() {
    for (name, docs) in examples() {
        let pod = docs.iter().find_map(pod_of).unwrap();
        let mounts_koordinator = |c: &Value| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == "/koordinator")
        };
        let installer = containers(&pod)
            .into_iter()
            .find(|c| c["args"] == serde_json::json!(["/koordinator"]))
            .unwrap_or_else(|| {
                panic!("{name}: no init container installs koordinator into /koordinator")
            });
        assert!(
            mounts_koordinator(installer),
            "{name}: the installer must mount /koordinator"
        );
        for c in containers(&pod) {
            if c["command"][0] == "/koordinator/koordinator" {
                assert!(
                    mounts_koordinator(c),
                    "{name}: {} runs koordinator without mounting /koordinator",
                    c["name"]
                );
            }
        }
    }
}

#[test]
fn roles_grant_list_and_watch_on_pods() {
    for (name, docs) in examples() {
        for role in docs.iter().filter(|d| d["kind"] == "Role") {
            let rule = role["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["resources"] == serde_json::json!(["pods"]));
            let rule = rule.unwrap_or_else(|| panic!("{name}: the Role has no rule for pods"));
            assert_eq!(
                rule["verbs"],
                serde_json::json!(["list", "watch"]),
                "{name}"
            );
            assert_eq!(rule["apiGroups"], serde_json::json!([""]), "{name}");
            let binding = docs.iter().find(|d| {
                d["kind"] == "RoleBinding" && d["roleRef"]["name"] == role["metadata"]["name"]
            });
            assert!(binding.is_some(), "{name}: the Role is bound to nothing");
        }
    }
}

/// The Pod Security Standards "restricted" profile, as the admission
/// controller checks it (pod and container securityContext).
#[test]
fn every_example_runs_under_the_restricted_pod_security_profile() {
    for (name, docs) in examples() {
        let pod = docs.iter().find_map(pod_of).unwrap();
        let spec = &pod["spec"];
        let pod_sc = &spec["securityContext"];
        for forbidden in ["hostNetwork", "hostPID", "hostIPC"] {
            assert_ne!(spec[forbidden], true, "{name}: {forbidden}");
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            assert!(v["hostPath"].is_null(), "{name}: hostPath volume");
        }
        for c in containers(&pod) {
            let sc = &c["securityContext"];
            let what = format!("{name}: container {}", c["name"]);
            let either = |key: &str| {
                if sc[key].is_null() {
                    pod_sc[key].clone()
                } else {
                    sc[key].clone()
                }
            };
            assert_eq!(either("runAsNonRoot"), true, "{what}: runAsNonRoot");
            assert_ne!(either("runAsUser"), 0, "{what}: runAsUser 0");
            assert_eq!(
                sc["allowPrivilegeEscalation"], false,
                "{what}: allowPrivilegeEscalation"
            );
            assert_ne!(sc["privileged"], true, "{what}: privileged");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{what}: drop ALL"
            );
            let added = sc["capabilities"]["add"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                added.iter().all(|a| a == "NET_BIND_SERVICE"),
                "{what}: adds {added:?}"
            );
            let seccomp = either("seccompProfile");
            assert!(
                seccomp["type"] == "RuntimeDefault" || seccomp["type"] == "Localhost",
                "{what}: seccompProfile"
            );
        }
    }
}
