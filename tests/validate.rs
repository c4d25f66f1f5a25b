//! `koordinator --validate` through the binary: the spec from the
//! environment, printed with every default, or the error and exit 2.

use koordinator_integration::harness::{code_of, koordinator_bin};
use std::process::{Command, Output};

fn validate(env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let out: Output = Command::new(koordinator_bin())
        .arg("--validate")
        .env_remove("KOORDINATOR_SPEC")
        .env_remove("KOOORDINATOR_SPEC")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        code_of(out.status),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_original_projects_specs_validate_with_their_meaning() {
    let (code, v, _) = validate(&[("KOORDINATOR_SPEC", r#"{"stopDeps":["main-container"]}"#)]);
    assert_eq!(code, 0);
    assert_eq!(v["stopDeps"], serde_json::json!(["main-container"]));
    assert_eq!(
        v["whenStopDepExited"],
        serde_json::json!({"signal": "SIGTERM"})
    );
    assert_eq!(v["termTimeout"], "30s");
    assert_eq!(v["killedByStopDepExitCode"], 137);

    let (code, v, _) = validate(&[(
        "KOORDINATOR_SPEC",
        r#"{"startDeps":["cloud-sql-proxy"],"stopDelay":"10s"}"#,
    )]);
    assert_eq!(code, 0);
    assert_eq!(
        v["startDeps"],
        serde_json::json!([{"name": "cloud-sql-proxy", "condition": "ready"}])
    );
    assert_eq!(v["stopDelay"], "10s");

    let spec = r#"{"whenStopDepExited":{"signal":15},"termTimeout":"5s","terminatedByStopDepExitCode":-1}"#;
    let (code, v, _) = validate(&[("KOORDINATOR_SPEC", spec)]);
    assert_eq!(code, 0);
    assert_eq!(v["whenStopDepExited"]["signal"], "SIGTERM");
    assert_eq!(v["terminatedByStopDepExitCode"], -1);
}

#[test]
fn no_spec_validates_as_the_defaults() {
    let (code, v, stderr) = validate(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["startDeps"], serde_json::json!([]));
    assert_eq!(v["startTimeout"], serde_json::Value::Null);
    assert_eq!(v["stopOn"], "any");
    assert_eq!(v["termWaitsForStopDeps"], true);
}

#[test]
fn an_invalid_spec_exits_2_naming_the_field() {
    let (code, v, stderr) = validate(&[(
        "KOORDINATOR_SPEC",
        r#"{"startDeps":["a"],"stopdelay":"1s"}"#,
    )]);
    assert_eq!(code, 2);
    assert_eq!(v, serde_json::Value::Null, "nothing on stdout");
    assert_eq!(
        stderr.trim(),
        r#"koordinator: invalid KOORDINATOR_SPEC: unknown field "stopdelay", did you mean "stopDelay"?"#
    );
}

#[test]
fn the_three_o_spelling_validates_with_a_warning_and_must_agree() {
    let (code, v, stderr) = validate(&[("KOOORDINATOR_SPEC", r#"{"stopDeps":["x"]}"#)]);
    assert_eq!(code, 0);
    assert_eq!(v["stopDeps"], serde_json::json!(["x"]));
    assert!(
        stderr.contains("KOOORDINATOR_SPEC is the original project's misspelling"),
        "{stderr}"
    );

    let (code, _, stderr) = validate(&[
        ("KOORDINATOR_SPEC", "{}"),
        ("KOOORDINATOR_SPEC", r#"{"stopDeps":["x"]}"#),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("both KOORDINATOR_SPEC and KOOORDINATOR_SPEC are set, to different values"),
        "{stderr}"
    );
}
