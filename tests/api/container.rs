//! The container recipe (`deploy/Dockerfile`) against the workspace: its dependency layer must
//! copy every member's manifest, the benchmarks the root manifest names and the build settings,
//! or `cargo` cannot even load the workspace inside the image build. Checked from the files, so
//! no Docker daemon is needed.

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
