//! The browser end-to-end tests: headless Chromium with a virtual authenticator drives the real
//! pages and script (Playwright scripts in tests/browser/): Latchkey's own pages (signin.mjs),
//! and the OIDC code flow and RP-initiated logout from a tiny relying party the script serves
//! (relying-party.mjs). Skipped with a notice when Chromium or the scripts' Node packages are
//! not installed (`.ci/run` installs both).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use latchkey::oidc::clients::ClientSpec;

use crate::helpers::{Backend, TestApp};

/// The script's path, or `None` (with a notice) when Chromium or node_modules are missing.
fn browser_script(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has_chromium = Path::new("/usr/bin/chromium").exists();
    let has_packages = root.join("tests/browser/node_modules/playwright-core").exists();
    if !(has_chromium && has_packages) {
        eprintln!("notice: Chromium or tests/browser/node_modules missing; skipping the browser test (see .ci/run)");
        return None;
    }
    Some(root.join("tests/browser").join(name))
}

/// Runs `node script args… [screenshot dir]` and fails the test with its output unless it
/// exits 0. Screenshots go to `$LATCHKEY_SCREENSHOTS`, or its subdirectory `subdir`.
async fn run_node(script: &Path, args: &[&str], subdir: Option<&str>) {
    let mut command = tokio::process::Command::new("node");
    command.arg(script).args(args);
    if let Ok(dir) = std::env::var("LATCHKEY_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        command.arg(subdir.map_or_else(|| dir.clone(), |s| dir.join(s)));
    }
    let output =
        command.kill_on_drop(true).stdout(Stdio::piped()).stderr(Stdio::piped()).output().await.expect("node runs");
    // Shown with --nocapture: the steps and their times.
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "browser test {} failed\nstdout:\n{}\nstderr:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn sign_up_sign_in_switch_user_and_manage_passkeys_in_chromium() {
    let Some(script) = browser_script("signin.mjs") else { return };
    let app = TestApp::spawn(Backend::Embedded).await;
    run_node(&script, &[&app.base], None).await;
}

#[tokio::test]
async fn relying_party_code_flow_and_logout_in_chromium() {
    let Some(script) = browser_script("relying-party.mjs") else { return };
    let app = TestApp::spawn(Backend::Embedded).await;
    // A free loopback port for the RP the script serves; released for the script to bind.
    let rp_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (client_id, secret) = crate::oidc::register(
        &app,
        ClientSpec {
            name: "Browser RP".into(),
            redirect_uris: vec![format!("http://localhost:{rp_port}/callback")],
            post_logout_redirect_uris: vec![format!("http://localhost:{rp_port}/signed-out")],
            first_party: true,
            ..Default::default()
        },
    )
    .await;
    let secret = secret.expect("a confidential client has a secret");
    run_node(&script, &[&app.base, &rp_port.to_string(), &client_id, &secret], Some("relying-party")).await;
}
