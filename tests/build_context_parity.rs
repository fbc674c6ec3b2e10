//! Compares bunker's build context with the docker CLI's on the sandbox engine.
//!
//! The same context directory is built twice with the classic builder and a
//! `FROM scratch` / `COPY . /ctx/` Dockerfile: once by `docker build` itself
//! (which applies `.dockerignore` with Docker's rules), once from the tar
//! bunker streams (`docker build -` passes it to the engine untouched). The
//! files that reach `/ctx` must be the same, with the same types, modes,
//! contents and link targets.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use bunker::image::build_context::{context_entries, context_stream};
use futures_util::StreamExt;

const NOT_RUNNING: &str = "sandbox not running: run scripts/sandbox.sh up";

/// `SANDBOX_DOCKER_HOST`, from the environment or the sandbox's `env.sh`.
fn sandbox_docker_host() -> String {
    if let Ok(host) = std::env::var("SANDBOX_DOCKER_HOST") {
        return host;
    }
    let directory = std::env::var_os("BUNKER_SANDBOX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".sandbox"));
    let env = std::fs::read_to_string(directory.join("env.sh")).expect(NOT_RUNNING);
    let host = env
        .lines()
        .find_map(|line| line.strip_prefix("export SANDBOX_DOCKER_HOST="))
        .expect(NOT_RUNNING)
        .trim_matches(['"', '\''])
        .to_string();
    let socket = host.strip_prefix("unix://").unwrap_or(&host);
    assert!(
        Path::new(socket).exists(),
        "{NOT_RUNNING} ({socket} is missing)"
    );
    host
}

fn docker(host: &str) -> Command {
    let mut command = Command::new("docker");
    command
        .env("DOCKER_HOST", host)
        .env("DOCKER_BUILDKIT", "0")
        .stderr(Stdio::piped());
    command
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|error| {
        panic!("cannot run {command:?} (is the docker CLI installed?): {error}")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn unique_tag(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "bunker-test/context-{label}:{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What `/ctx` of an image holds: path → (type, mode, content or link target).
type Listing = BTreeMap<String, (u8, u32, Vec<u8>)>;

fn listing_of_image(host: &str, image: &str) -> Listing {
    let container = String::from_utf8(run(docker(host).args(["create", image, "none"])))
        .unwrap()
        .trim()
        .to_string();
    let exported = run(docker(host).args(["export", &container]));
    run(docker(host).args(["rm", &container]));
    run(docker(host).args(["rmi", image]));
    let mut listing = Listing::new();
    let mut archive = tar::Archive::new(exported.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(path) = path.strip_prefix("ctx/") else {
            continue;
        };
        let path = path.trim_end_matches('/').to_string();
        if path.is_empty() {
            continue;
        }
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if let Ok(Some(target)) = header.link_name() {
            content = target.to_string_lossy().into_owned().into_bytes();
        }
        listing.insert(
            path,
            (
                header.entry_type().as_byte(),
                header.mode().unwrap(),
                content,
            ),
        );
    }
    listing
}

fn docker_cli_listing(host: &str, context: &Path, dockerfile: &Path) -> Listing {
    let tag = unique_tag("cli");
    run(docker(host)
        .args(["build", "-q", "-t", &tag, "-f"])
        .arg(dockerfile)
        .arg(context));
    listing_of_image(host, &tag)
}

fn bunker_listing(host: &str, context: &Path, dockerfile: &str) -> Listing {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tar, dockerfile_parameter) = runtime.block_on(async {
        let mut stream = context_stream(context, dockerfile).unwrap();
        let parameter = stream.dockerfile.clone();
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.unwrap());
        }
        (tar, parameter)
    });
    let tag = unique_tag("bunker");
    let mut child = docker(host)
        .args(["build", "-q", "-t", &tag, "-f", &dockerfile_parameter, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run docker build (is the docker CLI installed?)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "docker build from bunker's tar failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    listing_of_image(host, &tag)
}

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn sample_context(root: &Path) {
    write(root, "Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    write(
        root,
        ".dockerignore",
        "# comment\n*.log\n!important.log\nnode_modules\ndocs/*.md\n!docs/keep.md\n\
         secret/\n!secret/public\ntmp*\n**/cache\n/anchored.txt\nbuild/**/out\n\
         !foo/keep.txt\nfoo\n  # not a comment\n",
    );
    for file in [
        "app.log",
        "important.log",
        "sub/app.log",
        "node_modules/a/b.js",
        "sub/node_modules/c.js",
        "docs/a.md",
        "docs/keep.md",
        "docs/deep/x.md",
        "secret/key",
        "secret/public/readme",
        "tmpfile",
        "tmpdir/x",
        "a/cache/y",
        "cache/z",
        "anchored.txt",
        "sub/anchored.txt",
        "build/x/out/bin",
        "build/x/keep",
        "foo/keep.txt",
        "# not a comment",
        "src/main.rs",
    ] {
        write(root, file, file);
    }
    std::fs::set_permissions(
        root.join("src/main.rs"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    symlink("src/main.rs", root.join("link")).unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
}

fn assert_same(label: &str, bunker: &Listing, docker: &Listing) {
    let names = |listing: &Listing| listing.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(bunker), names(docker), "{label}: different paths");
    assert_eq!(bunker, docker, "{label}: same paths, different entries");
}

#[test]
fn context_matches_the_docker_cli() {
    let host = sandbox_docker_host();
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    sample_context(root);

    let docker = docker_cli_listing(&host, root, &root.join("Dockerfile"));
    let bunker = bunker_listing(&host, root, "Dockerfile");
    assert_same("sample context", &bunker, &docker);
    // The listing is not trivially empty or complete.
    assert!(docker.contains_key("sub/app.log") && !docker.contains_key("app.log"));
    assert!(docker.contains_key("secret/public/readme") && !docker.contains_key("secret/key"));
    assert!(!docker.contains_key("foo/keep.txt"));
    let entries = context_entries(root, "Dockerfile").unwrap();
    assert!(entries.contains(&PathBuf::from("docs/keep.md")));
}

#[test]
fn ignored_dockerfile_in_a_subdirectory_matches_the_docker_cli() {
    let host = sandbox_docker_host();
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    write(root, "docker/Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    write(root, ".dockerignore", "*\n!src\n");
    write(root, "src/lib.rs", "lib");
    write(root, "docker/other", "other");
    write(root, "README", "readme");

    let docker = docker_cli_listing(&host, root, &root.join("docker/Dockerfile"));
    let bunker = bunker_listing(&host, root, "docker/Dockerfile");
    assert_same("ignored Dockerfile", &bunker, &docker);
    assert!(docker.contains_key("src/lib.rs"));
}

#[test]
fn dockerfile_outside_the_context_matches_the_docker_cli() {
    let host = sandbox_docker_host();
    let directory = tempfile::tempdir().unwrap();
    let context = directory.path().join("context");
    write(&context, "app.txt", "app");
    write(&context, "skip.tmp", "skip");
    write(&context, ".dockerignore", "*.tmp\n");
    write(
        directory.path(),
        "Dockerfile",
        "FROM scratch\nCOPY . /ctx/\n",
    );

    let docker = docker_cli_listing(&host, &context, &directory.path().join("Dockerfile"));
    let bunker = bunker_listing(&host, &context, "../Dockerfile");
    // Each side hides its own generated Dockerfile name through .dockerignore,
    // whose content therefore differs by that name.
    let without_dockerignore = |listing: &Listing| {
        let mut listing = listing.clone();
        listing.remove(".dockerignore");
        listing
    };
    assert_same(
        "outside Dockerfile",
        &without_dockerignore(&bunker),
        &without_dockerignore(&docker),
    );
    assert!(docker.contains_key("app.txt") && !docker.contains_key("skip.tmp"));
}
