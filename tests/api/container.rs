//! The container recipe (`deploy/Dockerfile`) against the workspace: its dependency layer must
//! copy every member's manifest, the benchmarks the root manifest names and the build settings,
//! or `cargo` cannot even load the workspace inside the image build; its profile-guided build
//! needs the training script and what it runs. Checked from the files, so no Docker daemon is
//! needed.

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_container_recipe_copies_what_the_workspace_needs_to_load() {
    let manifest = read("Cargo.toml");
    let dockerfile = read("deploy/Dockerfile");
    let ignore = read("deploy/Dockerfile.dockerignore");
    let admitted = |path: &str| ignore.lines().any(|line| line == format!("!{path}"));

    let members = manifest.split_once("members = [").and_then(|(_, rest)| rest.split_once(']')).expect("members").0;
    let members: Vec<&str> = members.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()).collect();
    assert!(members.len() > 1, "{members:?}");
    for member in members.into_iter().filter(|m| *m != ".") {
        let path = format!("{member}/Cargo.toml");
        assert!(dockerfile.contains(&format!("COPY {path} {member}/")), "deploy/Dockerfile copies {path}");
        assert!(admitted(&path), "the ignore file admits {path}");
    }
    if manifest.contains("[[bench]]") {
        assert!(dockerfile.contains("COPY benches benches") && admitted("benches/"), "benches/ reaches the build");
    }
    assert!(dockerfile.contains("COPY .cargo .cargo") && admitted(".cargo/"), ".cargo/config.toml reaches the build");
}

/// The image's profile-guided build runs scripts/pgo-build.sh, which trains the instrumented
/// server with the load generator: the script and the sources of the generator and of the
/// software authenticator it signs with must reach the build, and the script must drive the
/// scenarios the generator has.
#[test]
fn the_container_recipe_has_what_the_profile_guided_build_needs() {
    let dockerfile = read("deploy/Dockerfile");
    let ignore = read("deploy/Dockerfile.dockerignore");
    let script = read("scripts/pgo-build.sh");
    assert!(dockerfile.contains("scripts/pgo-build.sh"), "the image is built by the PGO script");
    for (copy, admitted) in [
        ("COPY scripts/pgo-build.sh scripts/", "!scripts/pgo-build.sh"),
        ("COPY bench/src bench/src", "!bench/src/"),
        ("COPY softkey/src softkey/src", "!softkey/src/"),
    ] {
        assert!(dockerfile.contains(copy), "deploy/Dockerfile: {copy}");
        assert!(ignore.lines().any(|line| line == admitted), "the ignore file: {admitted}");
    }
    let generator = read("bench/src/lib.rs");
    let variants =
        generator.split_once("pub enum Scenario {").and_then(|(_, rest)| rest.split_once('}')).expect("Scenario").0;
    let scenarios: Vec<String> = variants
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//") && line.ends_with(','))
        .map(|line| line.trim_end_matches(',').to_lowercase())
        .collect();
    assert!(scenarios.iter().any(|s| s == "login") && scenarios.len() > 1, "the enum was read: {scenarios:?}");
    for scenario in scenarios {
        assert!(script.contains(&format!("--scenario {scenario}")), "the training runs the {scenario} scenario");
    }
}
