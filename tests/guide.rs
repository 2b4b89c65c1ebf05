//! docs/guide.md holds the endpoint table of the example service as `s2s-auth table
//! --config examples/auth.yaml` prints it. These tests regenerate it and fail when the
//! committed copy differs, so the guide cannot drift from what the layer does.
//!
//! After a change that moves the table on purpose: `S2S_BLESS=1 cargo test --test guide`
//! rewrites the block, then review the diff.

use s2s_auth::AuthBuilder;

#[path = "kit/mod.rs"]
mod kit;

const GUIDE: &str = "docs/guide.md";
const CONFIG: &str = "examples/auth.yaml";
const START: &str = "<!-- table:start";
const END: &str = "<!-- table:end -->";

fn path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The table as the library renders it for the example config.
async fn generated() -> String {
    let yaml = std::fs::read_to_string(path(CONFIG)).expect("examples/auth.yaml");
    let auth = AuthBuilder::from_yaml_str_with_env(&yaml, kit::example_env)
        .expect("the example config reads")
        .build_async()
        .await
        .expect("the example config builds");
    if let Some(accounts) = auth.service_accounts() {
        accounts.reload().await.expect("accounts");
    }
    auth.access_table().to_markdown()
}

/// The block between the markers in the guide (without the marker lines).
fn committed(guide: &str) -> (usize, usize) {
    let start = guide
        .find(START)
        .expect("the table's start marker in docs/guide.md");
    let body = start + guide[start..].find('\n').expect("a line after the marker") + 1;
    let end = guide
        .find(END)
        .expect("the table's end marker in docs/guide.md");
    assert!(body <= end, "markers out of order");
    (body, end)
}

#[tokio::test]
async fn the_guide_holds_the_generated_endpoint_table() {
    let table = generated().await;
    let guide = std::fs::read_to_string(path(GUIDE)).expect("docs/guide.md");
    let (body, end) = committed(&guide);
    let block = format!("{}\n", table.trim_end());
    if std::env::var_os("S2S_BLESS").is_some() {
        let updated = format!("{}{block}{}", &guide[..body], &guide[end..]);
        std::fs::write(path(GUIDE), updated).expect("write docs/guide.md");
        return;
    }
    assert!(
        guide[body..end] == block,
        "docs/guide.md's endpoint table differs from what `s2s-auth table --config {CONFIG}` \
         prints now; run `S2S_BLESS=1 cargo test --test guide` and review the diff"
    );
}

/// The binary prints the very same table (the guide says it comes from `s2s-auth table`).
#[cfg(feature = "cli")]
#[tokio::test]
async fn the_command_line_prints_the_same_table() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_s2s-auth"))
        .args(["table", "--config"])
        .arg(path(CONFIG))
        .envs(kit::example_env_pairs())
        .output()
        .expect("run s2s-auth");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(printed.trim_end(), generated().await.trim_end());
}
