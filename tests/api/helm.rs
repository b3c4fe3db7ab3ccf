//! The Helm chart's tests (deploy/tests/test_chart.py: strict lint, offline renders, every
//! object validated against the Kubernetes schemas, bad values refused), run from here so the
//! README's one test command covers the chart too. Skipped with a notice when python3 or its
//! packages (deploy/tests/requirements.txt) are missing; `.ci/run` installs them.

use std::{path::Path, process::Command};

#[test]
fn helm_chart_lints_renders_and_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let importable = Command::new("python3")
        .args(["-c", "import helm_python, kubernetes_validate, yaml"])
        .current_dir(root)
        .output()
        .is_ok_and(|output| output.status.success());
    if !importable {
        eprintln!(
            "notice: python3 with helm-python-sdk and kubernetes-validate not found; skipping the Helm chart tests (see .ci/run)"
        );
        return;
    }
    let output = Command::new("python3")
        .arg(root.join("deploy/tests/test_chart.py"))
        .current_dir(root)
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // Shown with --nocapture: one line per chart test (unittest reports on stderr).
    print!("{stdout}{stderr}");
    assert!(output.status.success(), "the Helm chart tests failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
}
