//! `koordinator --check`: each thing koordinator needs, tried for real, one
//! line each, OK or FAIL with the fix. Exit 0 only when all pass.

use crate::kube::{ApiError, Client, Target};
use crate::spec::Spec;
use std::time::Duration;

#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("ok    {what}: {detail}");
    }

    fn fail(&mut self, what: &str, problem: impl std::fmt::Display, fix: impl std::fmt::Display) {
        self.failed = true;
        println!("FAIL  {what}: {problem}");
        for line in fix.to_string().lines() {
            println!("      {line}");
        }
    }

    fn code(&self) -> i32 {
        if self.failed {
            crate::EXIT_FAILURE
        } else {
            0
        }
    }
}

fn summary(spec: &Spec) -> String {
    let start: Vec<String> = spec
        .start_deps
        .iter()
        .map(|d| format!("{} ({})", d.name, d.condition.as_str()))
        .collect();
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "startDeps {}; stopDeps {}",
        list(&start),
        list(&spec.stop_deps)
    )
}

/// Runs every check and prints the report.
pub fn run() -> i32 {
    let mut r = Report::default();
    let (spec, spec_text) = match crate::load_spec() {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                "spec",
                e,
                "fix the JSON; `koordinator --validate` prints the spec as koordinator reads it",
            );
            return r.code();
        }
    };
    r.ok("spec", summary(&spec));
    if !spec.uses_api() {
        r.ok(
            "API access",
            "not needed: without startDeps or stopDeps koordinator is a plain init",
        );
        return r.code();
    }
    let target = match Target::from_env() {
        Ok(t) => t,
        Err(e) => {
            r.fail("pod identity", e, "see the README section \"Pod identity\"");
            return r.code();
        }
    };
    r.ok(
        "pod name",
        format!("{} (from {})", target.pod.value, target.pod.source),
    );
    r.ok(
        "namespace",
        format!(
            "{} (from {})",
            target.namespace.value, target.namespace.source
        ),
    );
    let client = match Client::new(target.clone(), Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                "credentials",
                e,
                "mount the service-account token (automountServiceAccountToken: true)",
            );
            return r.code();
        }
    };
    let (pod, rv) = match client.list() {
        Ok(found) => found,
        Err(e) => {
            report_api_failure(&mut r, &target, "list pods", &e);
            return r.code();
        }
    };
    r.ok(
        "API server",
        format!(
            "{} answers, TLS verified against {}",
            target.server,
            target.ca_path.display()
        ),
    );
    r.ok(
        "list pods",
        format!("allowed; pod {:?} found", pod.metadata.name),
    );
    match client.watch(&rv, 1).and_then(|mut w| w.next_event()) {
        Ok(_) => r.ok("watch pods", "allowed"),
        Err(e) => report_api_failure(&mut r, &target, "watch pods", &e),
    }
    match crate::pod::validate(&pod, &spec, &spec_text) {
        Ok(()) => r.ok(
            "dependencies",
            format!(
                "all exist among the pod's containers ({}); no start cycle",
                pod.container_names().join(", ")
            ),
        ),
        Err(e) => r.fail(
            "dependencies",
            e,
            "fix the names in KOORDINATOR_SPEC or the pod's start dependencies",
        ),
    }
    r.code()
}

fn report_api_failure(r: &mut Report, target: &Target, what: &str, e: &ApiError) {
    let (pod, ns) = (&target.pod.value, &target.namespace.value);
    match e {
        ApiError::Status { code: 401, .. } => r.fail(
            what,
            e,
            "the API server rejected the service-account token: check that the token file is current and belongs to this cluster",
        ),
        ApiError::Status { code: 403, message, .. } => r.fail(what, e, crate::watcher::forbidden_hint(target, message)),
        ApiError::PodNotFound => r.fail(
            what,
            format!("pod {pod:?} not found in namespace {ns:?}"),
            format!(
                "the name came from {} and the namespace from {}: set KOORDINATOR_POD_NAME and KOORDINATOR_POD_NAMESPACE from the downward API (fieldRef: metadata.name / metadata.namespace)",
                target.pod.source, target.namespace.source
            ),
        ),
        ApiError::Transport(_) => r.fail(
            what,
            format!("cannot reach {}: {e}", target.server),
            "check KUBERNETES_SERVICE_HOST/PORT, NetworkPolicy egress to the API server, and that ca.crt is this cluster's CA",
        ),
        _ => r.fail(what, e, "the API server's answer was not what Kubernetes sends; check the server address"),
    }
}
