//! Resource limits and a hostile environment: each gets a clear message and
//! a documented exit code, never a panic. Tests that need root (setuid,
//! chroot, mounts) say so; CI runs as root.

use koordinator_integration::fixture::LocalPod;
use koordinator_integration::harness::{code_of, koordinator_bin, require_root};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

/// The exit codes the README documents for a failure before the start.
const DOCUMENTED: &[i32] = &[1, 2, 126, 127];

fn run(command: &mut Command) -> (i32, String, String) {
    let out: Output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    (
        code_of(out.status),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn with_rlimit(
    command: &mut Command,
    resource: libc::__rlimit_resource_t,
    limit: u64,
) -> &mut Command {
    // SAFETY: setrlimit between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let l = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(resource, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_very_low_open_file_limit_says_so() {
    let mut refused = 0;
    for limit in 3..=12 {
        let mut c = Command::new(koordinator_bin());
        c.args(["sh", "-c", "exit 5"]);
        let (code, _, stderr) = run(with_rlimit(&mut c, libc::RLIMIT_NOFILE, limit));
        if code == 5 {
            continue; // enough descriptors: the command ran
        }
        refused += 1;
        assert!(
            DOCUMENTED.contains(&code),
            "limit {limit}: exit {code}: {stderr}"
        );
        assert!(
            stderr.contains("the open-file limit is too low"),
            "limit {limit}: {stderr}"
        );
    }
    // With only the three standard descriptors nothing else can be opened.
    assert!(refused > 0, "no limit from 3 to 12 was too low");
}

#[test]
fn a_process_limit_reached_while_spawning_says_so() {
    if !require_root("a_process_limit_reached_while_spawning_says_so") {
        return;
    }
    let mut c = Command::new(koordinator_bin());
    c.args(["sh", "-c", "exit 5"]);
    // SAFETY: credential and limit calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 1,
                rlim_max: 1,
            };
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setrlimit(libc::RLIMIT_NPROC, &l) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (code, _, stderr) = run(&mut c);
    assert_eq!(code, 126, "{stderr}");
    assert!(
        stderr.contains("cannot run \"sh\": Resource temporarily unavailable")
            && stderr.contains("process limit"),
        "{stderr}"
    );
}

#[test]
fn a_non_utf8_environment_passes_through_and_a_non_utf8_spec_is_refused() {
    let raw = OsStr::from_bytes(b"caf\xe9 \xff\xfe");
    let (code, stdout, stderr) = run(Command::new(koordinator_bin())
        .args(["sh", "-c", "printf %s \"$X\" | od -An -tx1"])
        .env("X", raw)
        .env("KOORDINATOR_LOG", OsStr::from_bytes(b"\xff")));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        ["63", "61", "66", "e9", "20", "ff", "fe"]
    );
    assert!(
        stderr.contains("is not off, error, warn, info, debug or trace; using info"),
        "{stderr}"
    );

    let (code, _, stderr) = run(Command::new(koordinator_bin()).arg("true").env(
        "KOORDINATOR_SPEC",
        OsStr::from_bytes(b"{\"stopDeps\":[\"\xff\"]}"),
    ));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("KOORDINATOR_SPEC is not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_huge_environment_reaches_the_command() {
    // About 1.2 MB: eight variables of 120 KiB (each under the kernel's
    // 128 KiB per string) and a thousand small ones.
    let big = "x".repeat(120 << 10);
    let mut c = Command::new(koordinator_bin());
    c.args(["sh", "-c", "echo ${#BIG7} $V999"]);
    for i in 0..8 {
        c.env(format!("BIG{i}"), &big);
    }
    for i in 0..1000 {
        c.env(format!("V{i}"), format!("value-{i}"));
    }
    let (code, stdout, stderr) = run(&mut c);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("{} value-999", 120 << 10));
}

#[test]
fn an_unwritable_termination_log_changes_nothing_else() {
    let pod = LocalPod::new();
    let mut main = pod
        .container("main", r#"{"name":"main"}"#, &["true"])
        .spawn();
    assert_eq!(main.wait(std::time::Duration::from_secs(20)), 0);
    let mut proxy = pod
        .container("proxy", r#"{"stopDeps":["main"]}"#, &["sleep", "100"])
        .env("KOORDINATOR_TERMINATION_LOG", "/proc/version")
        .spawn();
    assert_eq!(
        proxy.wait(std::time::Duration::from_secs(20)),
        0,
        "the stop dependency had exited: not started, exit 0"
    );
    assert!(
        proxy
            .stderr()
            .iter()
            .any(|l| l.contains("stop dependency main has already exited")),
        "{:?}",
        proxy.stderr()
    );
}

/// A root file system with nothing but the static binary (and `extra`
/// directories), read-only, without /proc, run in a private mount namespace.
fn in_bare_root(script: &str) -> (i32, String, String) {
    let root = std::env::temp_dir().join(format!("koordinator-bare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::copy(koordinator_bin(), root.join("koordinator")).unwrap();
    let full = format!(
        "mount --bind {root} {root} && mount -o remount,bind,ro {root} && mount -t tmpfs state {root}/state && {script}",
        root = root.display()
    );
    let result = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &full])
        .env("ROOT", &root));
    let _ = std::fs::remove_dir_all(&root);
    result
}

#[test]
fn a_read_only_root_without_proc_runs_and_refuses_to_install_clearly() {
    if !require_root("a_read_only_root_without_proc_runs_and_refuses_to_install_clearly") {
        return;
    }
    let (code, stdout, stderr) = in_bare_root(
        "chroot $ROOT /koordinator -- /koordinator --version; echo rc=$?; chroot $ROOT /koordinator /; echo rc=$?",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("koordinator 0.1.0") && stdout.contains("rc=0"),
        "{stdout}"
    );
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert!(
        stderr.contains("install failed")
            && stderr.contains("Read-only file system")
            && stderr.contains("mount a writable emptyDir"),
        "{stderr}"
    );
}

#[test]
fn local_coordination_works_without_proc() {
    if !require_root("local_coordination_works_without_proc") {
        return;
    }
    // Kubernetes always mounts /proc in a container (the OCI runtime's
    // default mounts); koordinator still works when it is missing.
    let (code, stdout, stderr) = in_bare_root(
        "env KOORDINATOR_STATE_DIR=/state KOORDINATOR_SPEC='{\"name\":\"main\"}' chroot $ROOT /koordinator -- /koordinator --version; echo rc=$?; \
         env KOORDINATOR_STATE_DIR=/state KOORDINATOR_SPEC='{\"stopDeps\":[\"main\"]}' KOORDINATOR_TERMINATION_LOG=/state/log chroot $ROOT /koordinator -- /never-started; echo rc=$?; \
         cat $ROOT/state/main.json $ROOT/state/log",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("\"container\":\"main\",\"state\":\"exited\",\"restart\":0,\"code\":0"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "koordinator: not starting the command: stop dependency main has already exited"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.matches("rc=0").count(), 2, "{stdout}{stderr}");
}
