//! The static release executable (`scripts/release.sh`) on a host with nothing installed.
//!
//! The executable named by `BUNKER_STATIC_BINARY` (scripts/test.sh builds it once and sets
//! it) goes into a `FROM scratch` image with `/etc/hosts` and a projects tree: no libc, no
//! NSS modules, no CA bundle, no shell. In that container it catalogs the projects and
//! pulls from the sandbox registry over host networking, by `localhost` and by a name that
//! only `/etc/hosts` knows. The test fails loudly when the variable is unset or the file is
//! missing: CI must always run it.
//!
//! The CA part also runs on the debug binary with `SSL_CERT_FILE` pointing at an empty
//! file (no system roots): a plain-HTTP registry must still work.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Output, Sandbox, docker, docker_ok, run, sandbox, unique_name};

/// The static executable under test, from `BUNKER_STATIC_BINARY`.
fn static_binary() -> PathBuf {
    let path = std::env::var_os("BUNKER_STATIC_BINARY")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "BUNKER_STATIC_BINARY is not set: run scripts/release.sh and export \
                 BUNKER_STATIC_BINARY=dist/bunker-x86_64-linux (scripts/test.sh does both)"
            )
        });
    assert!(
        path.is_file(),
        "BUNKER_STATIC_BINARY={} does not exist: run scripts/release.sh",
        path.display()
    );
    path
}

/// A `FROM scratch` image of the executable, removed on drop.
struct ScratchImage<'a> {
    sandbox: &'a Sandbox,
    tag: String,
}

impl<'a> ScratchImage<'a> {
    /// Builds the image: `/bunker`, `/etc/hosts` and `/projects` (the repository's tree).
    fn build(sandbox: &'a Sandbox, binary: &Path) -> ScratchImage<'a> {
        let context = tempfile::tempdir().expect("create a build context");
        std::fs::copy(binary, context.path().join("bunker")).expect("copy the executable");
        std::fs::write(
            context.path().join("hosts"),
            "127.0.0.1 localhost\n::1 localhost\n",
        )
        .expect("write hosts");
        run(Command::new("cp")
            .arg("-r")
            .arg(common::projects_dir())
            .arg(context.path().join("projects")))
        .assert_success();
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY bunker /bunker\nCOPY hosts /etc/hosts\n\
             COPY projects /projects\nENTRYPOINT [\"/bunker\"]\n",
        )
        .expect("write the Dockerfile");
        let tag = format!("{}:1", unique_name("bunker-static-test"));
        let context_path = context.path().to_string_lossy().into_owned();
        docker_ok(sandbox, ["build", "-q", "-t", &tag, &context_path]);
        ScratchImage { sandbox, tag }
    }

    /// Runs `/bunker ARGS` in a throwaway container on the host's network (the sandbox
    /// engine has no bridge), with `docker_args` before the image.
    fn bunker(&self, docker_args: &[&str], args: &[&str]) -> Output {
        let mut command = vec!["run", "--rm", "--network", "host"];
        command.extend_from_slice(docker_args);
        command.push(&self.tag);
        command.extend_from_slice(args);
        docker(self.sandbox, command)
    }
}

impl Drop for ScratchImage<'_> {
    fn drop(&mut self) {
        let _ = docker(self.sandbox, ["rmi", "-f", &self.tag]);
    }
}

/// The sandbox registry's port (`127.0.0.1:PORT`).
fn registry_port(sandbox: &Sandbox) -> &str {
    sandbox
        .registry
        .rsplit_once(':')
        .map(|(_, port)| port)
        .expect("SANDBOX_REGISTRY is host:port")
}

/// The seed image's repository and tag in the plain registry (`bunker/busybox:1.36`).
fn seed_repository(sandbox: &Sandbox) -> &str {
    sandbox
        .registry_image
        .split_once('/')
        .map(|(_, repository)| repository)
        .expect("SANDBOX_REGISTRY_IMAGE is registry/repository:tag")
}

/// The images `manifest.json` of a pull into `archive` lists.
fn pulled_images(archive: &Path) -> Vec<String> {
    let manifest: serde_json::Value = serde_json::from_str(&common::read_text(
        &archive.join("x86_64").join("manifest.json"),
    ))
    .expect("manifest.json is JSON");
    manifest["images"]
        .as_array()
        .expect("manifest.json has images")
        .iter()
        .map(|entry| entry["image"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_static_executable_catalogs_and_pulls_in_an_empty_scratch_container() {
    let binary = static_binary();
    let sandbox = sandbox();

    // Static: no program interpreter, no shared library (what `file` calls "static-pie").
    let headers = run(Command::new("readelf").arg("-lW").arg(&binary));
    headers.assert_success();
    assert!(
        !headers.stdout.contains("INTERP"),
        "{} asks for a program interpreter:\n{headers}",
        binary.display()
    );
    let dynamic = run(Command::new("readelf").arg("-dW").arg(&binary));
    dynamic.assert_success();
    assert!(
        !dynamic.stdout.contains("(NEEDED)"),
        "{} needs shared libraries:\n{dynamic}",
        binary.display()
    );

    let image = ScratchImage::build(&sandbox, &binary);

    let version = image.bunker(&[], &["--version"]);
    version.assert_success();
    let commit = version
        .stdout
        .trim()
        .strip_prefix("bunker ")
        .and_then(|rest| rest.split_once("(commit "))
        .and_then(|(_, commit)| commit.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version lacks the commit:\n{version}"));
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "--version names no git commit:\n{version}"
    );

    image
        .bunker(&[], &["image-catalog", "--projects-dir", "/projects"])
        .assert_success()
        .assert_stdout_contains("httpd:1.36")
        .assert_stdout_contains("unique images");

    // By `localhost` (plain HTTP, no CA bundle in the container): the -v line says the
    // bundled roots are used.
    let archive = tempfile::tempdir().expect("create an archive directory");
    let mount = format!("{}:/archive", archive.path().display());
    let by_localhost = format!(
        "localhost:{}/{}",
        registry_port(&sandbox),
        seed_repository(&sandbox)
    );
    image
        .bunker(
            &["-v", &mount],
            &[
                "-v",
                "registry",
                "pull",
                &by_localhost,
                "--archive-dir",
                "/archive",
            ],
        )
        .assert_success()
        .assert_stderr_contains("no CA certificates found on this system")
        .assert_stderr_contains("bundled Mozilla root store");
    assert_eq!(pulled_images(archive.path()), [by_localhost]);

    // By a name only /etc/hosts knows (docker writes --add-host there; with host
    // networking it replaces the image's file by the host's plus these lines).
    let name = format!("{}.test", unique_name("bunker-static-registry"));
    let by_name = format!(
        "{name}:{}/{}",
        registry_port(&sandbox),
        seed_repository(&sandbox)
    );
    let named_archive = tempfile::tempdir().expect("create an archive directory");
    let named_mount = format!("{}:/archive", named_archive.path().display());
    let add_host = format!("{name}:127.0.0.1");
    image
        .bunker(
            &["-v", &named_mount, "--add-host", &add_host],
            &[
                "registry",
                "pull",
                "--insecure",
                &by_name,
                "--archive-dir",
                "/archive",
            ],
        )
        .assert_success();
    assert_eq!(pulled_images(named_archive.path()), [by_name]);
}

#[test]
fn without_system_ca_certificates_a_plain_http_registry_still_works() {
    let sandbox = sandbox();
    let home = common::TestHome::new(&sandbox);
    let no_roots = tempfile::NamedTempFile::new().expect("create an empty CA file");
    let repository = sandbox
        .registry_image
        .rsplit_once(':')
        .map(|(repository, _)| repository)
        .expect("SANDBOX_REGISTRY_IMAGE has a tag");

    let mut command = home
        .bunker()
        .env("SSL_CERT_FILE", no_roots.path())
        .args(["-v", "registry", "list-tags", repository])
        .into_command();
    command.env_remove("SSL_CERT_DIR");
    run(&mut command)
        .assert_success()
        .assert_stdout_contains("1.36")
        .assert_stderr_contains("no CA certificates found on this system")
        .assert_stderr_contains("bundled Mozilla root store");
}
