//! The binary as Pod Security "restricted" runs it: a non-root user, no
//! capabilities at all, no privilege escalation (`setpriv`), through its main
//! paths: install, plain init, coordination through the state directory
//! between containers of different users, and through the API.
//! Needs root to switch users; CI runs as root.

use koordinator_integration::fixture::{started_within, Fixture, STARTED};
use koordinator_integration::harness::{koordinator_bin, require_root, Koordinator, Running};
use koordinator_integration::pods::{running, terminated};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// `setpriv` arguments that drop to `uid`:`uid` with no capabilities, as a
/// restricted pod's container runs.
fn unprivileged(uid: u32) -> Vec<String> {
    [
        "setpriv".to_string(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
    .to_vec()
}

/// A container of user `uid` running `binary` with `args`.
fn container(uid: u32, binary: &Path, args: &[&str]) -> Koordinator {
    let mut all = unprivileged(uid);
    all.push(binary.display().to_string());
    all.extend(args.iter().map(|a| a.to_string()));
    let (first, rest) = all.split_first().unwrap();
    Koordinator::command(first, rest)
}

/// An emptyDir: a directory that every user may write.
fn empty_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "koordinator-restricted-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn status_line(k: &Running, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{}/status", k.pid))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_init_container_pattern_works_for_three_users_without_capabilities() {
    if !require_root("the_init_container_pattern_works_for_three_users_without_capabilities") {
        return;
    }
    let volume = empty_dir("pattern");
    // The install init container runs as the image's user, 65534.
    let out = Command::new("setpriv")
        .args(&unprivileged(65534)[1..])
        .arg(koordinator_bin())
        .arg(&volume)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let installed = volume.join("koordinator");
    // main runs as 1000, the proxy as the distroless nonroot 65532; neither
    // has API access. The state directory next to the copy is found alone.
    let env = |k: Koordinator, spec: &str| {
        k.env("KOORDINATOR_SPEC", spec)
            .env("KOORDINATOR_SERVICEACCOUNT_DIR", "/nonexistent")
            .env_remove("KOORDINATOR_STATE_DIR")
            .env_remove("KUBERNETES_SERVICE_HOST")
    };
    let mut proxy = env(
        container(65532, &installed, STARTED),
        r#"{"stopDeps":["main-container"]}"#,
    )
    .spawn();
    started_within(&mut proxy, T);
    assert!(
        status_line(&proxy, "CapEff:").ends_with("0000000000000000"),
        "no capabilities"
    );
    assert!(status_line(&proxy, "NoNewPrivs:").ends_with('1'));
    let mut main = env(
        container(1000, &installed, &["sh", "-c", "echo started; sleep 0.2"]),
        r#"{"name":"main-container"}"#,
    )
    .spawn();
    started_within(&mut main, T);
    assert_eq!(main.wait(T), 0);
    assert_eq!(proxy.wait(T), 0, "stopped through the state directory");
    // One user cannot remove or replace another's record (sticky directory).
    let record = volume.join("koordinator-state/main-container.json");
    let out = Command::new("setpriv")
        .args(&unprivileged(65532)[1..])
        .args(["sh", "-c"])
        .arg(format!("rm -f {0}; echo x > {0}", record.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("\"state\":\"exited\""));
    let _ = std::fs::remove_dir_all(&volume);
}

#[test]
fn a_plain_init_and_the_api_path_work_without_capabilities() {
    if !require_root("a_plain_init_and_the_api_path_work_without_capabilities") {
        return;
    }
    let mut k = container(65534, &koordinator_bin(), &["sh", "-c", "kill -TERM $$"]).spawn();
    assert_eq!(k.wait(T), 143);

    let f = Fixture::seed_job();
    f.set("main", running(true));
    let mut k = f
        .container(
            container(65534, &koordinator_bin(), STARTED),
            r#"{"stopDeps":["main"]}"#,
        )
        .env(
            "KOORDINATOR_POD_NAME",
            koordinator_integration::fixture::POD,
        )
        .spawn();
    started_within(&mut k, T);
    f.wait_for_watch(1);
    f.set("main", terminated(0));
    assert_eq!(k.wait(T), 0);
}
