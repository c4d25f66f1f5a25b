//! Exit codes pass through, signal deaths become 128+N, `-e` maps to 0,
//! and exec failures give 127/126 with a message naming the command.

use koordinator_integration::harness::{require_root, Koordinator};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn exit_code_of(args: &[&str]) -> (i32, Vec<String>) {
    let mut k = Koordinator::plain(args).spawn();
    let code = k.wait(T);
    (code, k.stderr().iter().map(|s| s.to_string()).collect())
}

#[test]
fn exit_codes_pass_through() {
    for code in [0, 1, 42, 255] {
        let (got, stderr) = exit_code_of(&["sh", "-c", &format!("exit {code}")]);
        assert_eq!(got, code);
        assert!(stderr.is_empty(), "a plain init prints nothing: {stderr:?}");
    }
}

#[test]
fn exit_codes_pass_through_as_pid1() {
    if !require_root("exit_codes_pass_through_as_pid1") {
        return;
    }
    for code in [0, 1, 42, 255] {
        let mut k = Koordinator::pid1(&["sh", "-c", &format!("exit {code}")]).spawn();
        assert_eq!(k.wait(T), code);
    }
}

#[test]
fn a_command_killed_by_a_signal_gives_128_plus_n() {
    assert_eq!(exit_code_of(&["sh", "-c", "kill -KILL $$"]).0, 137);
    assert_eq!(exit_code_of(&["sh", "-c", "kill -SEGV $$"]).0, 139);
    assert_eq!(exit_code_of(&["sh", "-c", "kill -USR1 $$"]).0, 138);
}

#[test]
fn dash_e_maps_an_exit_code_to_0() {
    assert_eq!(
        exit_code_of(&["-e", "143", "sh", "-c", "kill -TERM $$"]).0,
        0
    );
    assert_eq!(
        exit_code_of(&["-e", "3", "-e", "4", "sh", "-c", "exit 4"]).0,
        0
    );
    assert_eq!(exit_code_of(&["-e", "3", "sh", "-c", "exit 5"]).0, 5);
}

#[test]
fn success_exit_codes_in_the_spec_map_to_0() {
    let mut k = Koordinator::plain(&["sh", "-c", "exit 7"])
        .env("KOORDINATOR_SPEC", r#"{"successExitCodes":[7]}"#)
        .spawn();
    assert_eq!(k.wait(T), 0);
}

#[test]
fn a_missing_command_gives_127_naming_it() {
    let (code, stderr) = exit_code_of(&["/no/such/command", "arg"]);
    assert_eq!(code, 127);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("\"/no/such/command\": not found"),
        "{stderr:?}"
    );
    let (code, _) = exit_code_of(&["no-such-command-on-path"]);
    assert_eq!(code, 127);
}

#[test]
fn a_non_executable_command_gives_126_naming_it() {
    let dir = std::env::temp_dir().join(format!("koordinator-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("script");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    let (code, stderr) = exit_code_of(&[file.to_str().unwrap()]);
    assert_eq!(code, 126);
    assert!(
        stderr[0].contains("script\": Permission denied"),
        "{stderr:?}"
    );
    let (code, _) = exit_code_of(&[dir.to_str().unwrap(), "x"]);
    assert_eq!(code, 126, "a directory is not executable");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    for args in [&["-x", "true"][..], &[][..], &["-e", "nope", "true"][..]] {
        let (code, stderr) = exit_code_of(args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(
            stderr.last().map(String::as_str),
            Some("Try 'koordinator --help' for usage.")
        );
    }
}

#[test]
fn a_bad_spec_exits_2_without_starting_the_command() {
    let dir = std::env::temp_dir().join(format!("koordinator-badspec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("termination-log");
    let marker = dir.join("started");
    let mut k = Koordinator::plain(&["touch", marker.to_str().unwrap()])
        .env("KOORDINATOR_SPEC", r#"{"stopDep":["main"]}"#)
        .env("KOORDINATOR_TERMINATION_LOG", &log)
        .spawn();
    assert_eq!(k.wait(T), 2);
    assert!(!marker.exists(), "the command must not start");
    let expected = r#"invalid KOORDINATOR_SPEC: unknown field "stopDep", did you mean "stopDeps"?; check it with `koordinator --validate`"#;
    assert_eq!(k.stderr(), [format!("koordinator: error: {expected}")]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("koordinator: {expected}\n")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn version_names_the_target() {
    let mut k = Koordinator::plain(&["--version"]).spawn();
    assert_eq!(k.wait(T), 0);
    let out = k.stdout();
    assert!(
        out[0].starts_with("koordinator 0.") && out[0].contains("-unknown-linux-"),
        "{out:?}"
    );
}
