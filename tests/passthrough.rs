//! What the command gets from koordinator is what koordinator got: argv,
//! environment, stdin/stdout/stderr byte for byte, ignored signals, and an
//! empty signal mask.

use koordinator_integration::harness::koordinator_bin;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

fn status_field(output: &[u8], field: &str) -> u64 {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {text}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn argv_passes_through_byte_for_byte() {
    let args: Vec<&OsStr> = vec![
        OsStr::new("with space"),
        OsStr::new(""),
        OsStr::new("ünïcödé ✓"),
        OsStr::new("-x"),
        OsStr::new("--"),
        OsStr::new("--orphan-grace"),
        OsStr::from_bytes(b"\xff\xfe not utf-8"),
        OsStr::new("new\nline"),
    ];
    let out = Command::new(koordinator_bin())
        .args(["--", "printf", "%s\\0"])
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    assert_eq!(out.stdout, expected);
    assert!(out.stderr.is_empty());
}

#[test]
fn a_command_with_leading_dashes_after_double_dash() {
    let out = Command::new(koordinator_bin())
        .args(["-v", "--", "sh", "-c", "echo ok"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");
}

#[test]
fn environment_passes_through_unchanged() {
    let value = "multi\nline ünï = \"quoted\"";
    let out = Command::new(koordinator_bin())
        .env_clear()
        .env("FOO", value)
        .env("KOORDINATOR_SPEC", "{}")
        .env("PATH", "/usr/bin:/bin")
        .args(["env", "-0"])
        .output()
        .unwrap();
    let vars: Vec<&[u8]> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .collect();
    assert!(
        vars.contains(&format!("FOO={value}").as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(vars.contains(&&b"KOORDINATOR_SPEC={}"[..]));
    assert_eq!(
        vars.len(),
        3,
        "nothing added: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn pipe_through(script: &str, data: &[u8]) -> std::process::Output {
    let mut child = Command::new(koordinator_bin())
        .args(["sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn large_binary_stdin_reaches_stdout_unchanged() {
    let data = pseudo_random(16 << 20);
    let out = pipe_through("cat", &data);
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "stdout differs from stdin");
    assert!(out.stderr.is_empty());
}

#[test]
fn large_binary_stdin_reaches_stderr_unchanged() {
    let data = pseudo_random(4 << 20);
    let out = pipe_through("cat >&2", &data);
    assert!(out.status.success());
    assert!(out.stderr == data, "stderr differs from stdin");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_ignored_sighup_stays_ignored_and_nothing_stays_blocked() {
    // nohup ignores SIGHUP before it execs koordinator.
    let out = Command::new("nohup")
        .arg(koordinator_bin())
        .args(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        status_field(&out.stdout, "SigBlk"),
        0,
        "the command's mask is empty"
    );
    let ignored = status_field(&out.stdout, "SigIgn");
    assert_ne!(
        ignored & (1 << (libc::SIGHUP - 1)),
        0,
        "SIGHUP stays ignored"
    );
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE stays default"
    );
}

#[test]
fn an_ignored_sigpipe_stays_ignored() {
    let mut command = Command::new(koordinator_bin());
    command.args(["grep", "^SigIgn", "/proc/self/status"]);
    // SAFETY: signal() between fork and exec, as a shell would do it.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    assert_ne!(
        status_field(&out.stdout, "SigIgn") & (1 << (libc::SIGPIPE - 1)),
        0
    );
}

#[test]
fn nothing_is_ignored_when_nothing_was() {
    let mut command = Command::new(koordinator_bin());
    command.args(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
    // glibc's posix_spawn (used by Command without pre_exec) leaves signals 32
    // and 33 ignored; start koordinator with every disposition at default.
    // SAFETY: signal() between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // glibc's signal() refuses 32 and 33, so ask the kernel directly.
            #[repr(C)]
            struct KernelSigaction {
                handler: usize,
                flags: u64,
                restorer: usize,
                mask: u64,
            }
            let default = KernelSigaction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            for s in 1..=64 {
                if s != libc::SIGKILL && s != libc::SIGSTOP {
                    libc::syscall(libc::SYS_rt_sigaction, s, &default, 0usize, 8usize);
                }
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    assert_eq!(status_field(&out.stdout, "SigBlk"), 0);
    assert_eq!(status_field(&out.stdout, "SigIgn"), 0);
}
