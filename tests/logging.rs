//! koordinator's own output: stderr only, nothing from a plain init at the
//! default level, text or one JSON object a line.

use koordinator_integration::harness::Koordinator;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_plain_init_prints_nothing_at_the_default_level() {
    let mut k = Koordinator::plain(&["sh", "-c", "kill -TERM $$"]).spawn();
    assert_eq!(k.wait(T), 143);
    assert!(k.stderr().is_empty(), "{:?}", k.stderr());
    assert!(k.stdout().is_empty());
}

#[test]
fn json_format_gives_one_object_a_line() {
    let mut k = Koordinator::plain(&["-v", "sh", "-c", "exit 3"])
        .env("KOORDINATOR_LOG_FORMAT", "json")
        .spawn();
    assert_eq!(k.wait(T), 3);
    let lines = k.stderr();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["severity"], "DEBUG");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(v["message"].is_string());
    }
    assert!(k
        .stderr()
        .iter()
        .any(|l| l.contains("command exited with 3")));
}

#[test]
fn koordinator_log_sets_the_level_and_a_bad_value_is_reported() {
    let mut k = Koordinator::plain(&["true"])
        .env("KOORDINATOR_LOG", "debug")
        .spawn();
    assert_eq!(k.wait(T), 0);
    assert!(k
        .stderr()
        .iter()
        .any(|l| l.starts_with("koordinator: debug: started \"true\" as pid ")));

    let mut k = Koordinator::plain(&["true"])
        .env("KOORDINATOR_LOG", "loud")
        .spawn();
    assert_eq!(k.wait(T), 0);
    assert_eq!(
        k.stderr(),
        ["koordinator: warn: KOORDINATOR_LOG=\"loud\" is not off, error, warn, info, debug or trace; using info"]
    );
}

#[test]
fn dash_q_silences_warnings() {
    let mut k = Koordinator::plain(&["-q", "true"])
        .env("KOOORDINATOR_SPEC", "{}")
        .spawn();
    assert_eq!(k.wait(T), 0);
    assert!(k.stderr().is_empty(), "{:?}", k.stderr());
}

#[test]
fn the_three_o_spelling_works_with_a_warning() {
    let mut k = Koordinator::plain(&["sh", "-c", "exit 9"])
        .env("KOOORDINATOR_SPEC", r#"{"successExitCodes":[9]}"#)
        .spawn();
    assert_eq!(k.wait(T), 0);
    assert_eq!(
        k.stderr(),
        ["koordinator: warn: KOOORDINATOR_SPEC is the original project's misspelling; it works, but please rename it to KOORDINATOR_SPEC"]
    );
}
