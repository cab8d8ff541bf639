//! Stamps the commit into the build (`careers_build_info`, `careersctl --version`):
//! `CAREERS_COMMIT` when the build sets it (an image built without `.git`), else
//! `git rev-parse`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CAREERS_COMMIT");
    let git = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    // A new commit moves HEAD or the branch it names; either reruns this.
    println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed={}", git.join(branch).display());
    }
    let commit = std::env::var("CAREERS_COMMIT").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|commit| commit.trim().to_owned())
    });
    println!(
        "cargo:rustc-env=CAREERS_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".to_owned())
    );
}
