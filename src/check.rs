//! `koordinator --check`: each thing koordinator needs, tried for real, one
//! line each, OK or FAIL with the fix. Exit 0 only when nothing failed.

use crate::client::kube::{self, ApiError, Client, Target};
use crate::rules::plan;
use crate::rules::spec::Spec;
use crate::sources::probes;
use std::path::Path;

#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("ok    {what}: {detail}");
    }

    fn note(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("note  {what}: {detail}");
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
    let start: Vec<String> = spec.start_deps.iter().map(|d| d.describe()).collect();
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let name = spec
        .name
        .as_deref()
        .map(|n| format!("; name {n}"))
        .unwrap_or_default();
    format!(
        "startDeps {}; stopDeps {}{name}",
        list(&start),
        list(&spec.stop_deps)
    )
}

/// Runs every check and prints the report.
pub fn run(argv0: &Path) -> i32 {
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
    if !spec.coordinates() && spec.name.is_none() {
        r.ok(
            "sources",
            "none needed: without startDeps or stopDeps koordinator is a plain init",
        );
        return r.code();
    }
    let state_dir = crate::state_dir_in_effect(argv0);
    let credentials = kube::credentials(&kube::ProcessEnvironment);
    let plan = match plan::plan(&spec, credentials, state_dir) {
        Ok(p) => p,
        Err(e) => {
            r.fail("sources", e, "see the README, \"Without API access\"");
            return r.code();
        }
    };
    for line in plan.describe(&spec) {
        r.ok("source", line);
    }
    match &plan.state_dir {
        Some(dir) => check_state_dir(&mut r, dir),
        None => r.note(
            "state directory",
            "none (KOORDINATOR_STATE_DIR unset and no koordinator-state directory beside this binary): this container's state is not published",
        ),
    }
    for p in spec.probes() {
        match probes::attempt(&p.target, p.timeout) {
            Ok(()) => r.ok("probe", format!("{} passes now", p.target)),
            Err(e) => r.note(
                "probe",
                format!(
                    "{} does not pass yet ({e}); koordinator waits for it",
                    p.target
                ),
            ),
        }
    }
    if plan.api {
        check_api(&mut r, &spec, &spec_text);
    }
    r.code()
}

fn statvfs(path: &Path) -> Option<libc::statvfs> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut s) == 0).then_some(s)
    }
}

fn check_state_dir(r: &mut Report, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let what = "state directory";
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return r.fail(what, format!("{} is not a directory", dir.display()), "remove it, or point KOORDINATOR_STATE_DIR elsewhere"),
        Err(e) => return r.fail(what, format!("{}: {e}", dir.display()), "install koordinator with `koordinator DIR`, which creates it, or create it (mode 1777)"),
    };
    let probe = dir.join(format!(".check.{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            r.ok(what, format!("{} exists and is writable by this user", dir.display()));
        }
        Err(e) => r.fail(
            what,
            format!("{} is not writable by this user: {e}", dir.display()),
            "it must be writable by every container's user (mode 1777, as `koordinator DIR` creates it)",
        ),
    }
    // SAFETY: statfs writes into the zeroed struct.
    let overlay = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .ok()
        .is_some_and(|c| unsafe {
            let mut s: libc::statfs = std::mem::zeroed();
            libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == 0x794c_7630
        });
    let root_dev = std::fs::metadata("/").map(|m| m.dev()).ok();
    if overlay {
        r.fail(
            what,
            format!(
                "{} is on the container's own file system (overlay), which no other container sees",
                dir.display()
            ),
            "put it on a volume that the pod's containers share (an emptyDir)",
        );
    } else if root_dev == Some(meta.dev()) {
        r.note(what, format!("{} is on the same file system as /; in a container that means it is not on a shared volume", dir.display()));
    } else {
        r.ok(
            what,
            format!(
                "{} is on a file system of its own (a volume, as far as can be told)",
                dir.display()
            ),
        );
    }
    let install_dir = dir.parent().unwrap_or(dir);
    if statvfs(install_dir).is_some_and(|s| s.f_flag & libc::ST_NOEXEC != 0) {
        r.fail(
            what,
            format!("{} is mounted noexec", install_dir.display()),
            "containers cannot run koordinator from it: use an emptyDir without noexec (on nodes that mount the kubelet's directory noexec, `emptyDir: {medium: Memory}`)",
        );
    }
}

fn check_api(r: &mut Report, spec: &Spec, spec_text: &str) {
    let target = match Target::from_env() {
        Ok(t) => t,
        Err(e) => {
            r.fail("pod identity", e, "see the README section \"Pod identity\"");
            return;
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
    let mut client = Client::new(target.clone(), std::time::Duration::from_secs(10));
    let (pod, rv) = match client.list() {
        Ok((pods, rv)) => match pods
            .into_iter()
            .find(|p| p.metadata.name == target.pod.value)
        {
            Some(pod) => (pod, rv),
            None => {
                report_api_failure(r, &target, "list pods", &ApiError::PodNotFound);
                return;
            }
        },
        Err(e) => {
            report_api_failure(r, &target, "list pods", &e);
            return;
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
        Err(e) => report_api_failure(r, &target, "watch pods", &e),
    }
    match crate::rules::pod::validate(&pod, spec, spec_text) {
        Ok(me) => r.ok(
            "dependencies",
            format!(
                "all exist among the pod's containers ({}); no start cycle; this is container {}",
                pod.container_names().join(", "),
                me.as_deref()
                    .unwrap_or("(unknown: its spec is not a literal value in the pod)")
            ),
        ),
        Err(e) => r.fail(
            "dependencies",
            e,
            "fix the names in KOORDINATOR_SPEC or the pod's start dependencies",
        ),
    }
}

fn report_api_failure(r: &mut Report, target: &Target, what: &str, e: &ApiError) {
    let (pod, ns) = (&target.pod.value, &target.namespace.value);
    match e {
        ApiError::Status { code: 401, .. } => r.fail(
            what,
            e,
            "the API server rejected the service-account token: check that the token file is current and belongs to this cluster",
        ),
        ApiError::Status { code: 403, message, .. } => {
            r.fail(what, e, crate::sources::api::forbidden_hint(target, message))
        }
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
        ApiError::Credentials(_) => r.fail(
            what,
            e,
            "mount the service-account token (automountServiceAccountToken: true)",
        ),
        _ => r.fail(
            what,
            e,
            "the API server's answer was not what Kubernetes sends; check the server address",
        ),
    }
}
