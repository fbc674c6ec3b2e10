//! The layering rule, checked on the source: only the command line (`src/cli/`,
//! `src/main.rs`) knows clap and `crate::cli`; engine, archive, registry and the
//! other library modules take plain settings, so they never form an import cycle
//! with the command line.

use std::path::{Path, PathBuf};

/// Words a file outside the command line must not contain.
const FORBIDDEN: &[&str] = &["crate::cli", "use clap", "clap::"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `file:line: text` for each forbidden mention in files outside the command line.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        if relative.starts_with("cli") || relative == Path::new("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        for (index, line) in text.lines().enumerate() {
            if FORBIDDEN.iter().any(|word| line.contains(word)) {
                found.push(format!(
                    "src/{}:{}: {}",
                    relative.display(),
                    index + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn only_the_command_line_knows_clap_and_crate_cli() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} .rs files under {}",
        files.len(),
        src.display()
    );
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "only src/cli/ and src/main.rs may use clap or crate::cli; pass plain settings \
         into library modules instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("cli")).unwrap();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::write(src.join("main.rs"), "use clap::Parser;\n").unwrap();
    std::fs::write(src.join("cli/mod.rs"), "use clap::Args;\n").unwrap();
    std::fs::write(
        src.join("engine/mod.rs"),
        "//! engine\n\nuse crate::cli::GlobalArgs;\n",
    )
    .unwrap();
    std::fs::write(src.join("lib.rs"), "#[derive(clap::ValueEnum)]\n").unwrap();
    assert_eq!(
        violations(src),
        vec![
            "src/engine/mod.rs:3: use crate::cli::GlobalArgs;".to_owned(),
            "src/lib.rs:1: #[derive(clap::ValueEnum)]".to_owned(),
        ]
    );
}
