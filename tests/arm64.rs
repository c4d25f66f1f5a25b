//! The aarch64 static build, run under qemu-user: a smoke subset of the init
//! behaviours. `make test` builds it (`make static-arm64`) and points
//! KOORDINATOR_BIN_ARM64 at it.

use koordinator_integration::harness::code_of;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The arm64 binary and the qemu-user runner, or None (skip) outside CI.
fn arm64() -> Option<(String, PathBuf)> {
    let Some(bin) = std::env::var_os("KOORDINATOR_BIN_ARM64") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run `make test`, which builds the arm64 binary"
        );
        eprintln!("SKIPPED: KOORDINATOR_BIN_ARM64 is not set; run `make test`");
        return None;
    };
    let qemu = ["qemu-aarch64", "qemu-aarch64-static"]
        .into_iter()
        .find(|q| {
            Command::new(q)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("qemu-user is missing: make deps-arm64 installs it");
    Some((qemu.to_string(), PathBuf::from(bin)))
}

fn run(qemu: &str, bin: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new(qemu).arg(bin).args(args).output().unwrap()
}

#[test]
fn arm64_version_names_its_target() {
    let Some((qemu, bin)) = arm64() else { return };
    let out = run(&qemu, &bin, &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "koordinator {} (aarch64-unknown-linux-musl)",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn arm64_exit_codes_pass_through() {
    let Some((qemu, bin)) = arm64() else { return };
    for code in [0, 1, 42, 255] {
        let out = run(&qemu, &bin, &["sh", "-c", &format!("exit {code}")]);
        assert_eq!(code_of(out.status), code);
    }
    assert_eq!(
        code_of(run(&qemu, &bin, &["sh", "-c", "kill -KILL $$"]).status),
        137
    );
    assert_eq!(code_of(run(&qemu, &bin, &["/no/such/command"]).status), 127);
}

#[test]
fn arm64_forwards_signals() {
    let Some((qemu, bin)) = arm64() else { return };
    let script = "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.02; done";
    let mut child = Command::new(&qemu)
        .arg(&bin)
        .args(["sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let pid = child.id() as i32;
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    assert_eq!(lines.next().unwrap().unwrap(), "got USR1");
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    assert_eq!(code_of(child.wait().unwrap()), 3);
}

#[test]
fn arm64_installs_itself() {
    let Some((qemu, bin)) = arm64() else { return };
    let dir =
        std::env::temp_dir().join(format!("koordinator-arm64-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = run(&qemu, &bin, &[dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read(dir.join("koordinator")).unwrap() == std::fs::read(&bin).unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}
