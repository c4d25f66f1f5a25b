//! A short soak under faults and a signal storm (`make soak` runs the long
//! one): every pod reaches its expected outcome, nothing hangs or crashes,
//! and long-lived watchers keep a flat RSS, fd count and thread count.
//! The signal storm needs root (a PID namespace); CI runs as root.

use std::process::Command;

#[test]
fn forty_koordinators_under_faults_for_30s_then_a_signal_storm() {
    let storm = if koordinator_integration::harness::require_root("signal storm") {
        "20000"
    } else {
        "0"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--pods", "40", "--duration", "30s", "--storm", storm])
        .env(
            "KOORDINATOR_BIN",
            koordinator_integration::harness::koordinator_bin(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("soak: passed"), "{stdout}");
    println!("{stdout}");
}
