//! Reading a Pod or Job manifest into what the simulated kubelet runs.

use serde_json::Value;
use std::time::Duration;

/// Annotations podsim understands (on the pod template or the Job).
pub const ANNOTATION_PREFIX: &str = "podsim.koordinator.dev/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Init,
    /// A native sidecar: an init container with `restartPolicy: Always`.
    Sidecar,
    Regular,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Never,
    OnFailure,
    Always,
}

#[derive(Clone, Debug)]
pub enum Check {
    Exec(Vec<String>),
    Http { port: u16, path: String },
    Tcp { port: u16 },
}

#[derive(Clone, Debug)]
pub struct Probe {
    pub check: Check,
    pub initial_delay: Duration,
    pub period: Duration,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    pub kind: Kind,
    pub image: String,
    /// `command` + `args`, before volume paths are mapped.
    pub argv: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub readiness: Option<Probe>,
    pub mounts: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub enum EnvValue {
    Literal(String),
    PodName,
    Namespace,
    PodIp,
}

#[derive(Clone, Debug)]
pub enum Volume {
    Empty,
    /// downwardAPI items: (file path, field).
    Downward(Vec<(String, EnvValue)>),
}

#[derive(Clone, Debug)]
pub struct Manifest {
    pub is_job: bool,
    pub job_name: String,
    pub name: String,
    pub namespace: String,
    pub policy: Policy,
    pub grace: Duration,
    /// `automountServiceAccountToken` (true unless the pod says false).
    pub automount_token: bool,
    pub containers: Vec<ContainerSpec>,
    pub volumes: Vec<(String, Volume)>,
    pub annotations: Vec<(String, String)>,
    /// The pod as the API server serves it (spec only; status is podsim's).
    pub pod: Value,
}

#[derive(Debug)]
pub struct ManifestError(pub String);

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, ManifestError> {
    Err(ManifestError(message.into()))
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, ManifestError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => err(format!("{what}: expected strings, got {i}")),
            })
            .collect(),
        _ => err(format!("{what}: expected a list")),
    }
}

fn seconds(v: &Value, default: u64) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or(default))
}

fn port(v: &Value, what: &str) -> Result<u16, ManifestError> {
    v.as_u64().and_then(|p| u16::try_from(p).ok()).map_or_else(
        || err(format!("{what}: podsim needs a numeric port, got {v}")),
        Ok,
    )
}

fn field_ref(v: &Value, what: &str) -> Result<EnvValue, ManifestError> {
    match v["fieldRef"]["fieldPath"].as_str() {
        Some("metadata.name") => Ok(EnvValue::PodName),
        Some("metadata.namespace") => Ok(EnvValue::Namespace),
        Some("status.podIP") => Ok(EnvValue::PodIp),
        other => err(format!("{what}: podsim supports fieldRef metadata.name, metadata.namespace and status.podIP, not {other:?}")),
    }
}

fn probe(v: &Value, what: &str) -> Result<Option<Probe>, ManifestError> {
    if v.is_null() {
        return Ok(None);
    }
    let check = if !v["exec"].is_null() {
        Check::Exec(string_list(&v["exec"]["command"], what)?)
    } else if !v["httpGet"].is_null() {
        Check::Http {
            port: port(&v["httpGet"]["port"], what)?,
            path: v["httpGet"]["path"].as_str().unwrap_or("/").to_string(),
        }
    } else if !v["tcpSocket"].is_null() {
        Check::Tcp {
            port: port(&v["tcpSocket"]["port"], what)?,
        }
    } else {
        return err(format!(
            "{what}: podsim supports exec, httpGet and tcpSocket probes"
        ));
    };
    Ok(Some(Probe {
        check,
        initial_delay: seconds(&v["initialDelaySeconds"], 0),
        period: seconds(&v["periodSeconds"], 10),
        failure_threshold: v["failureThreshold"].as_u64().unwrap_or(3) as u32,
    }))
}

fn container(
    v: &Value,
    kind: Kind,
    annotations: &[(String, String)],
) -> Result<ContainerSpec, ManifestError> {
    let name = v["name"]
        .as_str()
        .map_or_else(|| err("a container has no name"), |n| Ok(n.to_string()))?;
    let what = format!("container {name:?}");
    let kind = if kind == Kind::Init && v["restartPolicy"] == "Always" {
        Kind::Sidecar
    } else {
        kind
    };
    let mut argv = string_list(&v["command"], &what)?;
    let args = string_list(&v["args"], &what)?;
    let image = v["image"].as_str().unwrap_or_default().to_string();
    if argv.is_empty() {
        let key = format!("{ANNOTATION_PREFIX}entrypoint.{name}");
        if let Some((_, json)) = annotations.iter().find(|(k, _)| *k == key) {
            argv = serde_json::from_str::<Vec<String>>(json).map_err(|e| {
                ManifestError(format!(
                    "annotation {key}: a JSON list of strings please ({e})"
                ))
            })?;
        } else if image.contains("koordinator") {
            // The koordinator image's entrypoint.
            argv = vec!["/bin/koordinator".into()];
        } else {
            return err(format!(
                "{what} has no command and podsim cannot run image {image:?}: give it a command, or map the image with the annotation {key}: '[\"/path/to/program\", \"arg\"]'"
            ));
        }
    }
    argv.extend(args);
    let mut env = Vec::new();
    for e in v["env"].as_array().into_iter().flatten() {
        let env_name = e["name"].as_str().unwrap_or_default().to_string();
        let value = if let Some(s) = e["value"].as_str() {
            EnvValue::Literal(s.to_string())
        } else if !e["valueFrom"].is_null() {
            field_ref(&e["valueFrom"], &format!("{what} env {env_name}"))?
        } else {
            EnvValue::Literal(String::new())
        };
        env.push((env_name, value));
    }
    let mounts = v["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["mountPath"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string(),
                m["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    Ok(ContainerSpec {
        readiness: probe(&v["readinessProbe"], &format!("{what} readinessProbe"))?,
        name,
        kind,
        image,
        argv,
        env,
        mounts,
    })
}

fn annotations(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// A short random suffix, like the one a Job controller gives its pods.
fn suffix() -> String {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 20;
    (0..5)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"bcdfghjklmnpqrstvwxz2456789"[(x % 27) as usize] as char
        })
        .collect()
}

/// Parses the first Pod or Job in a (multi-document) YAML text.
pub fn parse(yaml: &str) -> Result<Manifest, ManifestError> {
    let mut found = None;
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let v: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| ManifestError(format!("not valid YAML: {e}")))?;
        if matches!(v["kind"].as_str(), Some("Pod" | "Job")) {
            found = Some(v);
            break;
        }
    }
    let Some(doc) = found else {
        return err("no Pod or Job in the manifest");
    };
    let is_job = doc["kind"] == "Job";
    let (template, job_name) = if is_job {
        (
            doc["spec"]["template"].clone(),
            doc["metadata"]["name"]
                .as_str()
                .unwrap_or("job")
                .to_string(),
        )
    } else {
        (doc.clone(), String::new())
    };
    let mut all_annotations = annotations(&doc["metadata"]["annotations"]);
    if is_job {
        all_annotations.extend(annotations(&template["metadata"]["annotations"]));
    }
    let name = if is_job {
        format!("{job_name}-{}", suffix())
    } else {
        doc["metadata"]["name"].as_str().map_or_else(
            || err("the pod has no metadata.name"),
            |n| Ok(n.to_string()),
        )?
    };
    let namespace = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let spec = &template["spec"];
    let policy = match spec["restartPolicy"].as_str() {
        Some("Never") => Policy::Never,
        Some("OnFailure") => Policy::OnFailure,
        None | Some("Always") if !is_job => Policy::Always,
        Some("Always") => return err("a Job's pods need restartPolicy Never or OnFailure"),
        None => return err("a Job's pod template needs restartPolicy: Never or OnFailure"),
        Some(other) => return err(format!("unknown restartPolicy {other:?}")),
    };
    let mut containers = Vec::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        containers.push(container(c, Kind::Init, &all_annotations)?);
    }
    for c in spec["containers"].as_array().into_iter().flatten() {
        containers.push(container(c, Kind::Regular, &all_annotations)?);
    }
    if !containers.iter().any(|c| c.kind == Kind::Regular) {
        return err("the pod has no containers");
    }
    let mut volumes = Vec::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let vol_name = v["name"].as_str().unwrap_or_default().to_string();
        let volume = if let Some(items) = v["downwardAPI"]["items"].as_array() {
            let mut files = Vec::new();
            for item in items {
                files.push((
                    item["path"].as_str().unwrap_or_default().to_string(),
                    field_ref(item, &format!("volume {vol_name:?}"))?,
                ));
            }
            Volume::Downward(files)
        } else {
            Volume::Empty
        };
        volumes.push((vol_name, volume));
    }
    let mut pod = template.clone();
    pod["kind"] = "Pod".into();
    pod["apiVersion"] = "v1".into();
    pod["metadata"]["name"] = name.clone().into();
    pod["metadata"]["namespace"] = namespace.clone().into();
    pod["metadata"]["uid"] = format!("podsim-{name}").into();
    pod["status"] = serde_json::json!({"phase": "Pending"});
    Ok(Manifest {
        is_job,
        job_name,
        name,
        namespace,
        policy,
        grace: seconds(&spec["terminationGracePeriodSeconds"], 30),
        automount_token: spec["automountServiceAccountToken"].as_bool() != Some(false),
        containers,
        volumes,
        annotations: all_annotations,
        pod,
    })
}

impl Manifest {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        let full = format!("{ANNOTATION_PREFIX}{key}");
        self.annotations
            .iter()
            .find(|(k, _)| *k == full)
            .map(|(_, v)| v.as_str())
    }
}

/// Every document of a YAML text, as JSON values.
pub fn yaml_documents(yaml: &str) -> Result<Vec<Value>, ManifestError> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .map_err(|e| ManifestError(format!("not valid YAML: {e}")))
        })
        .collect()
}
