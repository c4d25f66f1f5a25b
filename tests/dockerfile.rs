//! The image's contract, checked without a Docker engine: the Dockerfile's
//! stages, paths, user and entrypoint, and the install flow the image runs
//! (`/bin/koordinator /koordinator` as user 65534) reproduced with the static
//! binary in an otherwise empty root file system.

use koordinator_integration::harness::{koordinator_bin, require_root, workspace_root};
use std::os::unix::fs::symlink;
use std::process::Command;

fn dockerfile() -> String {
    std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap()
}

/// The instructions of the last stage, continuation lines joined.
fn final_stage(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let lines: Vec<String> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let start = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines[start..].to_vec()
}

#[test]
fn the_final_stage_is_scratch_with_the_binary_user_and_entrypoint() {
    let stage = final_stage(&dockerfile());
    assert_eq!(stage[0], "FROM scratch");
    assert!(
        stage.contains(&"USER 65534:65534".to_string()),
        "{stage:#?}"
    );
    assert!(
        stage.contains(&"ENTRYPOINT [\"/bin/koordinator\"]".to_string()),
        "{stage:#?}"
    );
    assert!(
        stage
            .iter()
            .any(|l| l.starts_with("COPY --from=build /out/bin/ /bin/")),
        "{stage:#?}"
    );
    for label in ["title", "description", "version", "licenses", "source"] {
        assert!(
            dockerfile().contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
}

#[test]
fn the_build_stage_makes_the_static_binary_for_both_architectures() {
    let text = dockerfile();
    assert!(
        text.contains("FROM --platform=$BUILDPLATFORM"),
        "cross-builds from the build platform"
    );
    assert!(text.contains("amd64) target=x86_64-unknown-linux-musl"));
    assert!(text.contains("arm64) target=aarch64-unknown-linux-musl"));
    assert!(text.contains("cargo build --release --locked --target \"$target\" --bin koordinator"));
    assert!(text.contains("cp \"target/$target/release/koordinator\" /out/bin/koordinator"));
    assert!(text.contains("ln -s koordinator /out/bin/copy"));
    let ignore = std::fs::read_to_string(workspace_root().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "the build context leaves target/ out"
    );
}

#[test]
fn the_images_install_flow_works_in_an_empty_root_as_user_65534() {
    if !require_root("the_images_install_flow_works_in_an_empty_root_as_user_65534") {
        return;
    }
    // The image's file system: /bin/koordinator, /bin/copy, and the volume.
    let root = std::env::temp_dir().join(format!("koordinator-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("koordinator")).unwrap();
    std::fs::copy(koordinator_bin(), root.join("bin/koordinator")).unwrap();
    symlink("koordinator", root.join("bin/copy")).unwrap();
    std::os::unix::fs::chown(root.join("koordinator"), Some(65534), Some(65534)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("chroot")
            .arg("--userspec=65534:65534")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };

    // ENTRYPOINT ["/bin/koordinator"] with args: ["/koordinator"]
    let out = as_nobody(&["/bin/koordinator", "/koordinator"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "installed koordinator {} to /koordinator/koordinator (state directory /koordinator/koordinator-state)",
            env!("CARGO_PKG_VERSION")
        )
    );
    // The other containers run the copy, as PID 1 of their own image.
    let out = as_nobody(&["/koordinator/koordinator", "--version"]);
    assert!(out.status.success(), "{out:?}");
    // The original project's pattern: the binary invoked as `copy`.
    std::fs::remove_file(root.join("koordinator/koordinator")).unwrap();
    let out = as_nobody(&["/bin/copy", "/koordinator"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(root.join("koordinator/koordinator")).unwrap()
            == std::fs::read(koordinator_bin()).unwrap()
    );
    std::fs::remove_dir_all(&root).unwrap();
}
