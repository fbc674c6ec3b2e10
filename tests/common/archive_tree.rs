//! A temporary projects tree and archive directory for the tests that run bunker's
//! catalog-driven commands (`image-archive`, `image-build`) on the sandbox engine, with
//! the images each test names removed from the shared engine afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use super::{BunkerCommand, Output, Sandbox, TestHome, docker, docker_ok, read_text, sandbox};

/// A projects tree plus an archive directory; removes (or untags) the images it
/// recorded from the engine when dropped.
pub struct ArchiveTree {
    pub sandbox: Sandbox,
    pub home: TestHome,
    root: tempfile::TempDir,
    pub archive: tempfile::TempDir,
    pub images: Vec<String>,
}

impl ArchiveTree {
    /// Directories named `bunker-<kind>-tree-*` and `bunker-<kind>-out-*`.
    pub fn new(kind: &str) -> ArchiveTree {
        let sandbox = sandbox();
        ArchiveTree {
            home: TestHome::new(&sandbox),
            sandbox,
            root: tempfile::Builder::new()
                .prefix(&format!("bunker-{kind}-tree-"))
                .tempdir()
                .expect("create a projects tree"),
            archive: tempfile::Builder::new()
                .prefix(&format!("bunker-{kind}-out-"))
                .tempdir()
                .expect("create an archive directory"),
            images: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// A project whose only service runs `image` (pulled, or present with BUILD=false).
    pub fn image_project(&self, project: &str, image: &str) {
        let dir = self.path().join(project);
        fs::create_dir_all(&dir).expect("create the project");
        fs::write(
            dir.join("docker-compose.yaml"),
            format!("services:\n  app:\n    image: {image}\n"),
        )
        .expect("write docker-compose.yaml");
    }

    /// Records an image to remove afterwards and returns it.
    pub fn image(&mut self, name: String) -> String {
        self.images.push(name.clone());
        name
    }

    /// Tags the seed image as `image` on the engine (untagged on drop).
    pub fn tag_seed(&mut self, image: &str) {
        docker_ok(&self.sandbox, ["tag", &self.sandbox.seed_image, image]);
        self.images.push(image.to_string());
    }

    /// bunker over SSH on the sandbox engine, on this tree.
    pub fn bunker(&self) -> BunkerCommand {
        self.home
            .bunker()
            .remote(&self.sandbox)
            .arg("--projects-dir")
            .arg(self.path())
    }

    /// `bunker <command> <args>` on this tree.
    pub fn run(&self, command: &str, args: &[&str]) -> Output {
        self.bunker().arg(command).args(args).run()
    }

    /// `bunker image-archive --output-dir <archive> <args>` over SSH.
    pub fn archive(&self, args: &[&str]) -> Output {
        self.archive_command(args).run()
    }

    pub fn archive_command(&self, args: &[&str]) -> BunkerCommand {
        self.bunker()
            .arg("image-archive")
            .arg("--output-dir")
            .arg(self.archive.path())
            .args(args)
    }

    /// The same, with BUILD=false: archive what is on the engine.
    pub fn archive_present(&self, args: &[&str]) -> Output {
        self.archive_command(args).env("BUILD", "false").run()
    }

    /// `<archive>/x86_64`-style directory of the engine's architecture.
    pub fn arch_dir(&self) -> PathBuf {
        let entries: Vec<PathBuf> = fs::read_dir(self.archive.path())
            .expect("read the archive directory")
            .map(|entry| entry.expect("read an entry").path())
            .filter(|path| path.is_dir())
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "expected one architecture directory: {entries:?}"
        );
        entries[0].clone()
    }

    pub fn manifest(&self) -> serde_json::Value {
        let path = self.arch_dir().join("manifest.json");
        serde_json::from_str(&read_text(&path)).expect("manifest.json is JSON")
    }

    /// The file names under `<archive>/<arch>/<project>/` (none when not archived).
    pub fn archived_files(&self, project: &str) -> Vec<String> {
        let mut found = Vec::new();
        for arch in fs::read_dir(self.archive.path()).expect("read the archive directory") {
            let dir = arch.expect("entry").path().join(project);
            if dir.is_dir() {
                for file in fs::read_dir(&dir).expect("read the project directory") {
                    found.push(file.expect("entry").file_name().to_string_lossy().into());
                }
            }
        }
        found
    }
}

impl Drop for ArchiveTree {
    fn drop(&mut self) {
        for image in &self.images {
            let _ = docker(&self.sandbox, ["rmi", "-f", image.as_str()]);
        }
    }
}
