//! Every child that dies is reaped: orphans re-parented to koordinator as
//! PID 1, and as a child subreaper when it is not PID 1.

use koordinator_integration::harness::{require_root, Koordinator};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// Counts zombies in this PID namespace, waiting up to 5 s for them to go.
const COUNT_ZOMBIES: &str = r#"
for t in $(seq 50); do
  z=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z"' | wc -l)
  [ "$z" -eq 0 ] && break
  sleep 0.1
done
echo "zombies=$z"
"#;

#[test]
fn a_thousand_double_forked_orphans_are_all_reaped_as_pid1() {
    if !require_root("a_thousand_double_forked_orphans_are_all_reaped_as_pid1") {
        return;
    }
    let script = format!(
        r#"i=0; while [ $i -lt 1000 ]; do ( sh -c 'exit 0' & ); i=$((i+1)); done
           echo forked; {COUNT_ZOMBIES}"#
    );
    let mut k = Koordinator::pid1(&["sh", "-c", &script]).spawn();
    k.expect_line("forked", T);
    k.expect_line("zombies=0", T);
    assert_eq!(k.wait(T), 0);
}

#[test]
fn orphans_are_reaped_as_a_subreaper_when_not_pid1() {
    // The orphan reports its parent once its own parent has gone.
    let script = r#"
        ( sh -c 'sleep 0.2; echo "orphan $$ parent $(cut -d" " -f4 /proc/$$/stat)"' & )
        sleep 1; echo done
    "#;
    let mut k = Koordinator::plain(&["sh", "-c", script]).spawn();
    k.expect_line("done", T);
    let line = k
        .stdout()
        .into_iter()
        .find(|l| l.starts_with("orphan "))
        .expect("orphan line")
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[3],
        k.pid.to_string(),
        "re-parented to koordinator: {line}"
    );
    let orphan = fields[1];
    let stat = std::fs::read_to_string(format!("/proc/{orphan}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty(),
        "the orphan was reaped, not left a zombie: {stat}"
    );
    assert_eq!(k.wait(T), 0);
}

#[test]
fn orphan_grace_terms_the_rest_and_waits_for_them() {
    if !require_root("orphan_grace_terms_the_rest_and_waits_for_them") {
        return;
    }
    let script = r#"
        sh -c 'trap "echo orphan got TERM; exit 0" TERM; while :; do sleep 0.01; done' &
        sleep 0.2; exit 3
    "#;
    let started = Instant::now();
    let mut k = Koordinator::pid1(&["--orphan-grace", "5s", "sh", "-c", script]).spawn();
    k.expect_line("orphan got TERM", T);
    assert_eq!(k.wait(T), 3, "the command's code, not the orphan's");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exited once the orphan was gone"
    );
}

#[test]
fn orphan_grace_as_subreaper_terms_re_parented_children() {
    let script = r#"
        ( sh -c 'trap "echo orphan got TERM; exit 0" TERM; echo orphan ready; while :; do sleep 0.01; done' & )
        sleep 0.3; exit 4
    "#;
    let mut k = Koordinator::plain(&["--orphan-grace=5s", "sh", "-c", script]).spawn();
    k.expect_line("orphan got TERM", T);
    assert_eq!(k.wait(T), 4);
}

#[test]
fn orphan_grace_ends_when_its_time_is_up() {
    if !require_root("orphan_grace_ends_when_its_time_is_up") {
        return;
    }
    let script = "sh -c 'trap \"\" TERM; sleep 30' & sleep 0.2; exit 6";
    let started = Instant::now();
    let mut k = Koordinator::pid1(&["--orphan-grace", "500ms", "sh", "-c", script]).spawn();
    assert_eq!(k.wait(T), 6);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn without_orphan_grace_koordinator_exits_with_the_command() {
    if !require_root("without_orphan_grace_koordinator_exits_with_the_command") {
        return;
    }
    let started = Instant::now();
    let mut k = Koordinator::pid1(&["sh", "-c", "sleep 30 & exit 0"]).spawn();
    assert_eq!(k.wait(T), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The plain init's peak RSS stays under tini-static's and catatonit's
/// 700 kB (it is about 545 kB; the default layout gave 1,008 kB, the build
/// before this work 1,270). Almost all of it is the binary's code, mapped
/// 64 KB around each page fault, so this fails when `link/release.ld` stops
/// keeping the code a plain init never runs apart (a pattern that no longer
/// matches after a compiler update, or new code on the init's path that
/// drags a cold window in): `python3 bench/pages.py` shows which window
/// came back.
#[test]
fn a_plain_init_stays_under_700_kb() {
    let mut k = Koordinator::plain(&["sh", "-c", "echo started; exec sleep 5"]).spawn();
    k.expect_line("started", T);
    std::thread::sleep(Duration::from_millis(200));
    let hwm = koordinator_integration::harness::status_kb(k.pid, "VmHWM");
    k.signal(libc::SIGTERM);
    k.wait(T);
    assert!(hwm > 0);
    assert!(hwm <= 700, "a plain init's peak RSS is {hwm} kB");
}
