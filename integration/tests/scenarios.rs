//! End-to-end scenarios: each manifest in integration/scenarios/ runs in
//! podsim with the real static koordinator, and its timeline must match the
//! `.expect` file beside it. As root, every container gets its own PID
//! namespace, so koordinator runs as PID 1 there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Runs podsim on a manifest; returns its exit code and timeline as (seconds, text).
fn podsim(manifest: &Path, extra: &[&str]) -> (i32, Vec<(f64, String)>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podsim"))
        .args(extra)
        .arg(manifest)
        .env(
            "KOORDINATOR_BIN",
            koordinator_integration::harness::koordinator_bin(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut timeline: Vec<(f64, String)> = stdout
        .lines()
        .filter_map(|l| {
            let (t, text) = l.strip_prefix('+')?.split_once("s ")?;
            Some((t.parse().ok()?, text.to_string()))
        })
        .collect();
    // podsim stamps an exit with the moment the process ended, which can
    // print after what a faster container did in reaction to it; and an
    // output line with the moment podsim read it, which can come after the
    // exit of the process that wrote it. A container's exit is printed
    // after all its output: it is never earlier than its last line.
    let mut last_output: std::collections::HashMap<String, f64> = Default::default();
    for (t, text) in timeline.iter_mut() {
        if let Some((name, _)) = text.split_once(" | ") {
            last_output.insert(name.to_string(), *t);
        } else if let Some((name, _)) = text.split_once(" terminated") {
            if let Some(&last) = last_output.get(name) {
                *t = t.max(last);
            }
        }
    }
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    let code = koordinator_integration::harness::code_of(out.status);
    (
        code,
        timeline,
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// Checks a timeline against an `.expect` file: lines in order, `[>=Xs]`
/// and `[<=Xs]` gaps from the line before, `A || B` alternatives, `A && B`
/// for lines that come in either order (two containers exiting together),
/// and `!text` lines that must not appear.
fn check(name: &str, timeline: &[(f64, String)], expect: &str, output: &str) {
    let mut at = 0;
    let mut previous = 0.0;
    for line in expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(absent) = line.strip_prefix('!') {
            assert!(
                !output.contains(absent),
                "{name}: {absent:?} must not appear:\n{output}"
            );
            continue;
        }
        let (text, min_gap, max_gap) = if let Some((t, gap)) = line.rsplit_once(" [>=") {
            (
                t,
                gap.trim_end_matches("s]").parse::<f64>().unwrap(),
                f64::INFINITY,
            )
        } else if let Some((t, gap)) = line.rsplit_once(" [<=") {
            (t, 0.0, gap.trim_end_matches("s]").parse::<f64>().unwrap())
        } else {
            (line, 0.0, f64::INFINITY)
        };
        // "A || B": either outcome is right (it depends on who was scheduled first).
        // "A && B": both, in either order; the gap counts to the first of them.
        let mut offsets = Vec::new();
        for part in text.split(" && ") {
            let found = timeline[at..]
                .iter()
                .position(|(_, l)| part.split(" || ").any(|alt| l.contains(alt)));
            let Some(offset) = found else {
                panic!("{name}: expected {part:?} after line {at} of the timeline:\n{output}");
            };
            offsets.push(offset);
        }
        let offset = offsets.iter().copied().max().unwrap_or(0);
        let (t, _) = &timeline[at + offsets.iter().copied().min().unwrap_or(0)];
        assert!(
            t - previous >= min_gap && t - previous <= max_gap,
            "{name}: {text:?} came {:.3}s after the line before, expected >= {min_gap}s and <= {max_gap}s\n{output}",
            t - previous
        );
        previous = *t;
        at += offset + 1;
    }
}

/// Runs a scenario and checks its timeline; returns podsim's whole output.
fn scenario(name: &str) -> String {
    let manifest = scenarios_dir().join(format!("{name}.yaml"));
    let expect = std::fs::read_to_string(scenarios_dir().join(format!("{name}.expect"))).unwrap();
    let (code, timeline, output) = podsim(&manifest, &[]);
    assert_eq!(
        code, 0,
        "{name}: podsim says the pod did not end as expected:\n{output}"
    );
    check(name, &timeline, &expect, &output);
    output
}

#[test]
fn seed_job_with_the_three_o_spelling() {
    scenario("seed-job-three-o");
}

#[test]
fn three_container_start_chain() {
    scenario("start-chain");
}

#[test]
fn dependency_on_a_native_sidecar() {
    scenario("native-sidecar");
}

#[test]
fn completed_dependency_on_a_run_to_completion_container() {
    scenario("completed-dep");
}

#[test]
fn on_failure_main_fails_once_while_the_proxy_stays_up() {
    scenario("onfailure-restart");
}

#[test]
fn pod_deletion_with_term_waits_for_stop_deps() {
    scenario("delete-term-waits");
}

#[test]
fn pod_deletion_with_a_stop_dep_only_the_api_can_follow() {
    scenario("delete-unwrapped-dep");
}

#[test]
fn the_seed_job_without_rbac() {
    let output = scenario("seed-job-no-rbac");
    assert!(output.contains("api requests served: 0"), "{output}");
}

#[test]
fn stop_delay_drains_before_sigterm() {
    scenario("stop-delay");
}

#[test]
fn start_timeout() {
    scenario("start-timeout");
}

#[test]
fn a_stop_dep_that_exited_before_its_dependent_started() {
    scenario("stop-dep-exited-first");
}

#[test]
fn http_quit_action_against_a_stand_in_proxy() {
    scenario("http-quit");
}

#[test]
fn a_misspelt_dependency_name_is_reported_clearly() {
    scenario("misspelt-dep");
}

#[test]
fn a_start_dependency_cycle_is_reported_clearly() {
    scenario("start-cycle");
}

#[test]
fn every_scenario_has_an_expect_file_and_a_test() {
    let source = include_str!("scenarios.rs");
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                path.with_extension("expect").is_file(),
                "{stem}.expect is missing"
            );
            assert!(
                source.contains(&format!("scenario(\"{stem}\")")),
                "no test runs {stem}"
            );
        }
    }
}

#[test]
fn the_demo_job_succeeds_in_under_10_seconds() {
    let demo = koordinator_integration::podsim::workspace_path("examples/job-demo.yaml");
    let started = std::time::Instant::now();
    let (code, timeline, output) = podsim(&demo, &[]);
    assert_eq!(code, 0, "{output}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let expect = "database-proxy ready\nmain-container | connecting to the database through the proxy\n\
                  main-container terminated exit=0 && database-proxy terminated exit=0 (koordinator: stop dependency main-container exited\n\
                  job job-demo complete";
    check("job-demo", &timeline, expect, &output);
}

#[test]
fn a_hundred_seed_job_pods_at_once_all_succeed() {
    let demo = koordinator_integration::podsim::workspace_path("examples/job-demo.yaml");
    let children: Vec<_> = (0..100)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_podsim"))
                .args(["-q"])
                .arg(&demo)
                .env(
                    "KOORDINATOR_BIN",
                    koordinator_integration::harness::koordinator_bin(),
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failed.push(
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            );
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 100 pods failed; the first:\n{}",
        failed.len(),
        failed[0]
    );
}

#[test]
fn a_manifest_podsim_cannot_run_says_why() {
    let dir = std::env::temp_dir().join(format!("podsim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: nginx}\n").unwrap();
    let (code, _, output) = podsim(&file, &[]);
    assert_eq!(code, 2);
    assert!(
        output.contains("container \"app\" has no command and podsim cannot run image \"nginx\""),
        "{output}"
    );
    assert!(
        output.contains("podsim.koordinator.dev/entrypoint.app"),
        "{output}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
