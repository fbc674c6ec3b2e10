//! Build script: puts the git commit into `BUNKER_GIT_COMMIT` for `bunker --version`, so a
//! static binary copied onto a bare host still says which source it came from.
//!
//! `BUNKER_GIT_COMMIT` set in the environment wins (builds from a tarball); without git or
//! outside a checkout the commit is "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BUNKER_GIT_COMMIT");
    let commit = std::env::var("BUNKER_GIT_COMMIT")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BUNKER_GIT_COMMIT={commit}");
}

/// The checked-out commit (12 hex digits), watching the files that change with it.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD lives in the worktree's git dir; branch refs and packed-refs in the common one.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        watch(&git_dir.join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from) {
        watch(&common.join("packed-refs"));
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(&common.join(reference));
        }
    }
    Some(commit)
}

/// Output of `git ARGS` in the package directory, trimmed; None if git fails or is missing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn watch(path: &Path) {
    let path = if path.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    } else {
        path.to_path_buf()
    };
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
