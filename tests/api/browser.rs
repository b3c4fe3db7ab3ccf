//! The browser end-to-end test: headless Chromium with a virtual authenticator drives the real
//! pages and script (tests/browser/signin.mjs, Playwright). Skipped with a notice when Chromium
//! or the script's Node packages are not installed (`.ci/run` installs both).

use std::{path::Path, process::Stdio};

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn sign_up_sign_in_switch_user_and_manage_passkeys_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/signin.mjs");
    let has_chromium = Path::new("/usr/bin/chromium").exists();
    let has_packages = root.join("tests/browser/node_modules/playwright-core").exists();
    if !(has_chromium && has_packages) {
        eprintln!("notice: Chromium or tests/browser/node_modules missing; skipping the browser test (see .ci/run)");
        return;
    }
    let app = TestApp::spawn(Backend::Embedded).await;
    let mut command = tokio::process::Command::new("node");
    command.arg(&script).arg(&app.base);
    if let Ok(dir) = std::env::var("LATCHKEY_SCREENSHOTS") {
        command.arg(dir);
    }
    let output = command.stdout(Stdio::piped()).stderr(Stdio::piped()).output().await.expect("node runs");
    assert!(
        output.status.success(),
        "browser test failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
