//! `koordinator DIR`, `--install DIR` and `copy DIR`: an atomic copy of the
//! binary, mode 0755, and the state directory beside it (mode 1777), usable
//! by a non-root user, with a clear error for each way a volume can fail.

use koordinator_integration::harness::{code_of, koordinator_bin, require_root};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Directories a test made read-only or gave away must be writable again.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("koordinator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn assert_installed(dir: &Path, out: &Output) {
    assert!(out.status.success(), "{out:?}");
    let target = dir.join("koordinator");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "installed koordinator {} to {} (state directory {})",
            env!("CARGO_PKG_VERSION"),
            target.display(),
            dir.join("koordinator-state").display()
        )
    );
    assert!(
        std::fs::read(&target).unwrap() == std::fs::read(koordinator_bin()).unwrap(),
        "an exact copy"
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let mut leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["koordinator", "koordinator-state"],
        "no temporary file left behind"
    );
    assert_eq!(
        std::fs::metadata(dir.join("koordinator-state"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777,
        "sticky and writable by every container's user"
    );
    let version = Command::new(&target).arg("--version").output().unwrap();
    assert!(version.status.success(), "the copy runs");
}

#[test]
fn a_directory_as_the_only_argument_installs() {
    let dir = temp_dir("install-dir");
    let out = Command::new(koordinator_bin()).arg(&dir).output().unwrap();
    assert_installed(&dir, &out);
}

#[test]
fn dash_dash_install_installs_and_replaces_an_old_copy() {
    let dir = temp_dir("install-flag");
    std::fs::write(dir.join("koordinator"), b"old").unwrap();
    let out = Command::new(koordinator_bin())
        .arg("--install")
        .arg(&dir)
        .output()
        .unwrap();
    assert_installed(&dir, &out);
}

#[test]
fn invoked_as_copy_installs() {
    let dir = temp_dir("install-copy");
    let bin_dir = temp_dir("install-copy-bin");
    symlink(koordinator_bin(), bin_dir.join("copy")).unwrap();
    let out = Command::new(bin_dir.join("copy"))
        .arg(&dir)
        .output()
        .unwrap();
    assert_installed(&dir, &out);
    let out = Command::new(koordinator_bin())
        .arg0("copy")
        .args(["a", "b"])
        .output()
        .unwrap();
    assert_eq!(code_of(out.status), 2, "copy takes exactly one directory");
}

#[test]
fn the_mode_is_0755_whatever_the_umask() {
    let dir = temp_dir("install-umask");
    let mut command = Command::new(koordinator_bin());
    command.arg(&dir);
    // SAFETY: umask between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    assert_installed(&dir, &command.output().unwrap());
}

#[test]
fn a_reader_never_sees_a_partial_binary() {
    let dir = temp_dir("install-atomic");
    let expected = std::fs::read(koordinator_bin()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, done, expected) = (dir.to_path_buf(), done.clone(), expected.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while !done.load(Ordering::Relaxed) {
                if let Ok(bytes) = std::fs::read(dir.join("koordinator")) {
                    assert!(
                        bytes == expected,
                        "saw {} of {} bytes",
                        bytes.len(),
                        expected.len()
                    );
                    seen += 1;
                }
            }
            seen
        })
    };
    for _ in 0..30 {
        let out = Command::new(koordinator_bin()).arg(&dir).output().unwrap();
        assert!(out.status.success());
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0, "the reader saw the file");
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let out = Command::new(koordinator_bin())
        .args(["--install", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(code_of(out.status), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "koordinator: install failed: /no/such/dir is not usable: No such file or directory"
        ),
        "{err}"
    );
    assert!(err.contains("mount a volume there"), "{err}");
}

#[test]
fn a_file_instead_of_a_directory_is_a_clear_error() {
    let out = Command::new(koordinator_bin())
        .args(["--install", "/etc/hostname"])
        .output()
        .unwrap();
    assert_eq!(code_of(out.status), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/etc/hostname is not a directory"));
}

fn as_nobody(command: &mut Command) -> &mut Command {
    // SAFETY: credential calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_non_root_user_can_install() {
    if !require_root("a_non_root_user_can_install") {
        return;
    }
    let dir = temp_dir("install-nobody");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = as_nobody(Command::new(koordinator_bin()).arg(&dir))
        .output()
        .unwrap();
    assert_installed(&dir, &out);
}

#[test]
fn an_unwritable_directory_says_so() {
    if !require_root("an_unwritable_directory_says_so") {
        return;
    }
    let dir = temp_dir("install-unwritable");
    let out = as_nobody(Command::new(koordinator_bin()).arg("--install").arg(&dir))
        .output()
        .unwrap();
    assert_eq!(code_of(out.status), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Permission denied")
            && err.contains("is not writable by uid 65534 (this container's user)")
            && err.contains("it belongs to uid 0 with mode 755: set fsGroup"),
        "{err}"
    );
}

/// Runs koordinator with a fresh tmpfs mounted (with `options`) in a private
/// mount namespace, so nothing leaks into the host's mounts.
fn install_into_tmpfs(options: &str) -> Output {
    let dir = temp_dir(&format!(
        "install-tmpfs-{}",
        options.replace(['=', ','], "-")
    ));
    let script = format!(
        "mount -t tmpfs -o {options} koordinator-test {dir} || exit 99; {bin} --install {dir}; rc=$?; ls -A {dir}; exit $rc",
        dir = dir.display(),
        bin = koordinator_bin().display()
    );
    Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .unwrap()
}

#[test]
fn a_read_only_volume_says_so() {
    if !require_root("a_read_only_volume_says_so") {
        return;
    }
    let out = install_into_tmpfs("ro");
    assert_eq!(code_of(out.status), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Read-only file system") && err.contains("mount a writable emptyDir"),
        "{err}"
    );
}

#[test]
fn a_full_volume_says_so_and_leaves_nothing_behind() {
    if !require_root("a_full_volume_says_so_and_leaves_nothing_behind") {
        return;
    }
    let out = install_into_tmpfs("size=64k");
    assert_eq!(code_of(out.status), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No space left on device") && err.contains("the volume is full"),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "the temporary file was removed"
    );
}

#[test]
fn a_noexec_volume_says_what_to_use_instead() {
    if !require_root("a_noexec_volume_says_what_to_use_instead") {
        return;
    }
    let out = install_into_tmpfs("noexec");
    assert_eq!(code_of(out.status), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is on a file system mounted noexec")
            && err.contains("could not run koordinator from it")
            && err.contains("emptyDir: {medium: Memory}"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "nothing written");
}

#[test]
fn the_static_binary_runs_and_installs_in_an_empty_root() {
    if !require_root("the_static_binary_runs_and_installs_in_an_empty_root") {
        return;
    }
    let root = temp_dir("empty-root");
    std::fs::copy(koordinator_bin(), root.join("koordinator")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    let run = |args: &[&str]| {
        Command::new("chroot")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&["/koordinator", "--version"]);
    assert!(out.status.success(), "{out:?}");
    // As its own command: a plain init needs nothing from the file system.
    let out = run(&["/koordinator", "/koordinator", "--version"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("koordinator "));
    // No /proc in a bare chroot: install falls back to argv[0].
    let out = run(&["/koordinator", "/out"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(root.join("out/koordinator")).unwrap()
            == std::fs::read(koordinator_bin()).unwrap()
    );
    let out = run(&["/koordinator", "/no-such-command"]);
    assert_eq!(code_of(out.status), 127);
}
