//! Registry work without Docker, against the sandbox's real docker-registry
//! instances, checked with real clients (docker load/pull through the sandbox
//! engine, skopeo). Network faults and token auth come from the loopback
//! proxy and token server in `registry_support`, in front of the real registry.

mod common;
mod registry_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Output, Sandbox, TestHome, auth_registry_auth_file, build_unique_image, docker, docker_ok,
    http_status, image_id, push_to_registry, run, run_with_stdin, sandbox, unique_name,
};
use registry_support::{
    FaultAction, FaultProxy, FaultRule, Seeded, TokenServer, docker_save_tar, noise, one_file_tar,
    push_one_file_image, raw_manifest, registry_test, seed_big_image, skopeo_push, write_file,
};

fn archive_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tar.gz"))
        .map(|entry| entry.path().to_path_buf())
        .collect()
}

/// Builds a unique image `<name>:local` on the engine, pushes it to the plain registry as
/// `repository_and_tag` and removes it from the engine: (image ID, registry reference).
fn engine_image_in_registry(
    sandbox: &Sandbox,
    name: &str,
    repository_and_tag: &str,
) -> (String, String) {
    let local = format!("{name}:local");
    let image_id = build_unique_image(sandbox, &local);
    let reference = push_to_registry(sandbox, &local, repository_and_tag);
    docker_ok(sandbox, ["rmi", &local]);
    (image_id, reference)
}

#[test]
fn pull_writes_a_docker_loadable_archive_with_the_pushed_image_id() {
    let (sandbox, home, archive, name) = registry_test("bunker-pull");
    let (pushed_id, reference) = engine_image_in_registry(&sandbox, &name, &format!("{name}:v1"));

    home.registry_pull(archive.path())
        .arg(&reference)
        .run()
        .assert_success()
        .assert_stdout_contains(&pushed_id);

    let files = archive_files(archive.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let arch_dir = archive.path().join("x86_64");
    assert!(files[0].starts_with(arch_dir.join("registry")), "{files:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&common::read_text(&arch_dir.join("manifest.json"))).unwrap();
    let entry = &manifest["images"][0];
    assert_eq!(entry["action"], "registry-pull");
    assert_eq!(entry["image"], reference.as_str());
    assert_eq!(entry["docker_id"], pushed_id.as_str());
    let loaded = docker(&sandbox, ["load", "-i", files[0].to_str().unwrap()]);
    loaded.assert_success().assert_stdout_contains(&reference);
    assert_eq!(
        image_id(&sandbox, &reference).as_deref(),
        Some(pushed_id.as_str())
    );
    docker_ok(&sandbox, ["rmi", &reference]);

    // Pushed back from manifest.json: the layers are mounted, the image ID kept.
    let to = format!("{}/restored", sandbox.registry);
    home.registry_push(&to, archive.path())
        .run()
        .assert_success()
        .assert_stdout_contains("mounted");
    let restored = raw_manifest(&format!("{to}/{name}:v1"));
    assert_eq!(
        restored["config"]["digest"].as_str(),
        Some(pushed_id.as_str())
    );
}

#[test]
fn pull_oci_layout_passes_skopeo_inspect_and_dir_format_matches_skopeo() {
    let (sandbox, home, archive, _) = registry_test("oci-layout");
    let pull = |format: &str| {
        home.registry_pull(archive.path())
            .args(["--format", format, &sandbox.registry_image])
            .run()
            .assert_success();
    };
    pull("oci");
    let repository_and_tag = sandbox.registry_image.split_once('/').unwrap().1;
    let inspected = run(Command::new("skopeo").arg("inspect").arg(format!(
        "oci:{}:{repository_and_tag}",
        archive.path().display()
    )));
    inspected
        .assert_success()
        .assert_stdout_contains("\"Architecture\": \"amd64\"");
    let source = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}", sandbox.registry_image)));
    let layers = |text: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["Layers"].clone()
    };
    assert_eq!(layers(&inspected.stdout), layers(&source.stdout));

    pull("dir");
    let dir = walkdir::WalkDir::new(archive.path().join("dir"))
        .into_iter()
        .flatten()
        .find(|entry| entry.file_name() == "version")
        .expect("a dir-format image")
        .path()
        .parent()
        .unwrap()
        .to_path_buf();
    run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("dir:{}", dir.display())))
    .assert_success();
}

#[test]
fn push_to_the_auth_registry_with_flattening_then_skopeo_and_docker_pull_it() {
    let (sandbox, home, archive, name) = registry_test("proj");
    let (pushed_id, reference) =
        engine_image_in_registry(&sandbox, &name, &format!("group/{name}/app:v2"));
    home.registry_pull(archive.path())
        .args(["--format", "oci", &reference])
        .run()
        .assert_success();

    // Login through bunker (password on stdin), then push with flattening.
    common::login_to_auth_registry(&home, &sandbox);

    let to = format!("{}/mirror", sandbox.auth_registry);
    let expected = format!("{}/mirror/group-{name}-app:v2", sandbox.auth_registry);
    let push = |extra: &[&str]| {
        home.registry_push(&to, archive.path())
            .args(["--flatten", "2"])
            .args(extra)
            .run()
    };
    push(&["--dry-run"])
        .assert_success()
        .assert_stdout_contains(&format!("{reference} -> {expected} [new]"));
    assert_eq!(
        http_status(
            &format!(
                "http://{}/v2/mirror/group-{name}-app/manifests/v2",
                sandbox.auth_registry
            ),
            Some((&sandbox.auth_user, &sandbox.auth_password))
        ),
        404,
        "the dry run must not write"
    );
    push(&[])
        .assert_success()
        .assert_stdout_contains(&format!("pushed {expected}"));

    let auth_file = auth_registry_auth_file(&sandbox);
    run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(auth_file.path())
        .arg(format!("docker://{expected}")))
    .assert_success();

    let client_config = tempfile::tempdir().unwrap();
    let engine = |args: &[&str]| -> Output {
        run(Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &sandbox.docker_host)
            .env("DOCKER_CONFIG", client_config.path()))
    };
    run_with_stdin(
        Command::new("docker")
            .args(["login", "-u", &sandbox.auth_user, "--password-stdin"])
            .arg(&sandbox.auth_registry)
            .env("DOCKER_HOST", &sandbox.docker_host)
            .env("DOCKER_CONFIG", client_config.path()),
        sandbox.auth_password.as_bytes(),
    )
    .assert_success();
    engine(&["pull", "-q", &expected]).assert_success();
    assert_eq!(
        image_id(&sandbox, &expected).as_deref(),
        Some(pushed_id.as_str())
    );
    docker_ok(&sandbox, ["rmi", &expected]);

    // A second push finds everything in place.
    push(&["--dry-run"])
        .assert_success()
        .assert_stdout_contains("[up to date]");
}

#[test]
fn docker_archives_are_pushed_with_mapping_file_renames() {
    let (sandbox, home, work, name) = registry_test("map");
    let (first, first_id) = one_file_tar(work.path(), &format!("team-{name}/api:1"), ("a", b"api"));
    let (second, _) = one_file_tar(work.path(), &format!("other/{name}:1"), ("b", b"web"));
    let mapping = write_file(
        work.path(),
        "mapping.yaml",
        &format!(
            "repositories:\n  other/{name}: exact/{name}-web\nrewrite:\n  - match: '^team-([^/]+)/(.*)$'\n    replace: 'teams/$1-$2'\n"
        ),
    );
    let to = format!("{}/renamed", sandbox.registry);
    home.registry_push(&to, &work.path().join("archive"))
        .arg("--mapping")
        .arg(&mapping)
        .args([&first, &second])
        .run()
        .assert_success();
    let catalog = home
        .bunker()
        .args(["registry", "catalog", &sandbox.registry])
        .run();
    catalog.assert_success();
    assert!(
        catalog
            .stdout
            .lines()
            .any(|line| line == format!("renamed/teams/{name}-api")),
        "{catalog}"
    );
    assert!(
        catalog
            .stdout
            .lines()
            .any(|line| line == format!("exact/{name}-web")),
        "{catalog}"
    );
    // The pushed docker archive keeps its image ID.
    let pushed = raw_manifest(&format!("{}/renamed/teams/{name}-api:1", sandbox.registry));
    assert_eq!(pushed["config"]["digest"].as_str(), Some(first_id.as_str()));
}

#[test]
fn conflicting_mappings_are_refused_in_dry_run_and_real_run() {
    let (sandbox, home, work, name) = registry_test("clash");
    let (first, _) = one_file_tar(work.path(), &format!("a/{name}:1"), ("a", b"one"));
    let (second, _) = one_file_tar(work.path(), &format!("b/{name}:1"), ("b", b"two"));
    let archive = work.path().join("archive");
    let push_with = |to: &str, mapping: &Path, sources: &[&PathBuf], extra: &[&str]| {
        home.registry_push(to, &archive)
            .arg("--mapping")
            .arg(mapping)
            .args(sources)
            .args(extra)
            .run()
    };
    let mapping = write_file(
        work.path(),
        "mapping.yaml",
        &format!("repositories:\n  a/{name}: same/{name}\n  b/{name}: same/{name}\n"),
    );
    for extra in [&["--dry-run"][..], &[][..]] {
        push_with(&sandbox.registry, &mapping, &[&first, &second], extra)
            .assert_code(1)
            .assert_stdout_contains("CONFLICT: 2 different images map to")
            .assert_stderr_contains("nothing was pushed");
    }
    assert_eq!(
        http_status(
            &format!("http://{}/v2/same/{name}/manifests/1", sandbox.registry),
            None
        ),
        404
    );

    // An existing tag with another digest is a conflict too, unless --overwrite.
    let exists = format!("{}/exists", sandbox.registry);
    home.registry_push(&exists, &archive)
        .arg(&first)
        .run()
        .assert_success();
    let mapping = write_file(
        work.path(),
        "onto-existing.yaml",
        &format!("repositories:\n  b/{name}: exists/a/{name}\n"),
    );
    let clash = |extra: &[&str]| push_with(&exists, &mapping, &[&second], extra);
    clash(&[])
        .assert_code(1)
        .assert_stdout_contains("already holds")
        .assert_stdout_contains("--overwrite");
    clash(&["--overwrite"])
        .assert_success()
        .assert_stdout_contains("[replaces sha256:");
}

#[test]
fn pull_survives_429_503_and_a_cut_connection_without_fetching_bytes_twice() {
    let (sandbox, home, work, repository) = registry_test("flaky");
    let Seeded {
        image_id,
        big_digest,
        big_size,
        ..
    } = seed_big_image(&sandbox, work.path(), &repository, 3 << 20);
    let proxy = FaultProxy::start(&sandbox.registry);
    let rule =
        |method: &str, path: &str, action: FaultAction| FaultRule::new(method, path, action, 1);
    proxy.add_rule(rule(
        "GET",
        "/manifests/",
        FaultAction::too_many_requests(1),
    ));
    proxy.add_rule(rule("GET", "/manifests/", FaultAction::CutAfter(10)));
    proxy.add_rule(rule("GET", &big_digest, FaultAction::unavailable()));
    proxy.add_rule(rule("GET", &big_digest, FaultAction::CutAfter(1 << 20)));
    let archive = work.path().join("archive");
    let reference = format!("{}/{repository}:1", proxy.address);
    home.registry_pull(&archive)
        .env("BUNKER_RETRY_INITIAL_MS", "20")
        .arg(&reference)
        .run()
        .assert_success()
        .assert_stdout_contains(&image_id);

    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.status == 429), "{seen:#?}");
    assert!(seen.iter().any(|s| s.status == 503), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|s| s.path.contains("/manifests/") && s.status == 200 && s.body_bytes == 10),
        "a manifest cut mid-body was asked for again: {seen:#?}"
    );
    assert!(
        seen.iter().any(|s| s.path.contains(&big_digest)
            && s.range.as_deref() == Some(&format!("bytes={}-{}", 1 << 20, big_size - 1)[..])),
        "the resumed request asks only for the rest: {seen:#?}"
    );
    assert_eq!(
        proxy.body_bytes(&big_digest),
        big_size,
        "every byte of the big layer crossed the network exactly once"
    );
    let cached = archive
        .join("blobs/sha256")
        .join(big_digest.trim_start_matches("sha256:"));
    assert_eq!(std::fs::metadata(&cached).unwrap().len(), big_size);
    assert_eq!(archive_files(&archive).len(), 1);
}

#[test]
fn a_killed_run_resumes_from_the_partial_blob_after_restart() {
    let (sandbox, home, work, repository) = registry_test("resume");
    let Seeded {
        big_digest,
        big_size,
        ..
    } = seed_big_image(&sandbox, work.path(), &repository, 3 << 20);
    let proxy = FaultProxy::start(&sandbox.registry);
    let cut = 2 << 20;
    proxy.add_rule(FaultRule::new(
        "GET",
        &big_digest,
        FaultAction::CutAfter(cut),
        1,
    ));
    let archive = work.path().join("archive");
    let reference = format!("{}/{repository}:1", proxy.address);
    // One attempt only: the run fails like a killed one, keeping the partial blob.
    let failed = home
        .registry_pull(&archive)
        .env("BUNKER_RETRY_ATTEMPTS", "1")
        .arg(&reference)
        .run();
    failed
        .assert_code(1)
        .assert_stderr_contains("next run resumes there");
    let hex = big_digest.trim_start_matches("sha256:");
    let partial = archive.join("blobs/sha256").join(format!("{hex}.partial"));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut as u64);
    proxy.clear_seen();

    home.registry_pull(&archive)
        .arg(&reference)
        .run()
        .assert_success();
    assert_eq!(
        proxy.body_bytes(&big_digest),
        big_size - cut as u64,
        "only the missing bytes are fetched"
    );
    assert!(!partial.exists());
    assert!(archive.join("blobs/sha256").join(hex).is_file());
}

#[test]
fn a_blob_with_a_wrong_digest_fails_the_image_and_never_enters_the_cache() {
    let (sandbox, home, work, repository) = registry_test("corrupt");
    let Seeded { big_digest, .. } = seed_big_image(&sandbox, work.path(), &repository, 3 << 20);
    let proxy = FaultProxy::start(&sandbox.registry);
    // Corrupt on both attempts: a single bad answer is fetched once more.
    proxy.add_rule(FaultRule::new("GET", &big_digest, FaultAction::Corrupt, 2));
    let archive = work.path().join("archive");
    let output = home
        .registry_pull(&archive)
        .arg(format!("{}/{repository}:1", proxy.address))
        .run();
    output
        .assert_code(1)
        .assert_stderr_contains(&format!("blob {big_digest}"))
        .assert_stderr_contains("digest mismatch");
    let hex = big_digest.trim_start_matches("sha256:");
    assert!(!archive.join("blobs/sha256").join(hex).exists());
    assert!(
        !archive
            .join("blobs/sha256")
            .join(format!("{hex}.partial"))
            .exists()
    );
    assert!(archive_files(&archive).is_empty());
}

#[test]
fn bearer_tokens_are_fetched_with_scopes_and_credentials() {
    let (sandbox, home, work, repository) = registry_test("token");
    let (_, image_id) = push_one_file_image(
        &sandbox,
        work.path(),
        &format!("{repository}:7"),
        ("t", b"token"),
    );
    let tokens = TokenServer::start("alice", "s3cret");
    let proxy = FaultProxy::start(&sandbox.registry);
    proxy.require_tokens(&tokens);

    let list_tags = || list_tags(&home, &format!("{}/{repository}", proxy.address), &[]);

    // Anonymous: the token endpoint refuses, bunker says what to do.
    list_tags()
        .assert_code(1)
        .assert_stderr_contains("bunker login");

    home.write_docker_auth(&proxy.address, "alice", "s3cret");
    list_tags().assert_success().assert_stdout_contains("7");
    home.registry_pull(&work.path().join("archive"))
        .arg(format!("{}/{repository}:7", proxy.address))
        .run()
        .assert_success()
        .assert_stdout_contains(&image_id);
    let scopes = tokens.requests.lock().unwrap().clone();
    assert!(
        scopes
            .iter()
            .any(|scope| scope == &format!("repository:{repository}:pull")),
        "{scopes:?}"
    );
}

#[test]
fn export_to_registry_storage_is_served_by_docker_registry() {
    let (sandbox, home, work, name) = registry_test("export");
    let pushed = format!("group/sub/{name}:1");
    push_one_file_image(&sandbox, work.path(), &pushed, ("x", b"one"));
    let archive = work.path().join("archive");
    home.registry_pull(&archive)
        .arg(format!("{}/{pushed}", sandbox.registry))
        .args([sandbox.registry_image.as_str(), "--format", "oci"])
        .run()
        .assert_success();
    let storage = work.path().join("storage");
    home.bunker()
        .args(["registry", "export", "--format", "registry-storage"])
        .arg(&storage)
        .arg("--archive-dir")
        .arg(&archive)
        .run()
        .assert_success()
        .assert_stdout_contains("2 image(s)");

    let port = common::free_port();
    let config = write_file(
        work.path(),
        "registry.yml",
        &format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n",
            storage.display()
        ),
    );
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry is installed");
    let address = format!("127.0.0.1:{port}");
    // Bounded: a registry that exits or never answers fails the test with its reason,
    // instead of hanging the suite. 2400 polls of 50 ms is minutes, far beyond a slow start.
    let mut polls = 0;
    while http_status(&format!("http://{address}/v2/"), None) != 200 {
        if let Some(status) = registry.try_wait().unwrap() {
            panic!(
                "docker-registry serve {} exited ({status}) before answering on {address}",
                config.display()
            );
        }
        polls += 1;
        if polls == 2400 {
            let _ = registry.kill();
            let _ = registry.wait();
            panic!("docker-registry on {address} did not answer /v2/ with 200 after {polls} polls");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let repository_and_tag = sandbox
        .registry_image
        .split_once('/')
        .unwrap()
        .1
        .to_string();
    for image in [pushed, repository_and_tag] {
        let out = work.path().join(image.replace(['/', ':'], "_"));
        let copied = run(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{address}/{image}"))
            .arg(format!("dir:{}", out.display())));
        if !copied.success() {
            let _ = registry.kill();
        }
        copied.assert_success();
    }
    let catalog = home.bunker().args(["registry", "catalog", &address]).run();
    let _ = registry.kill();
    let _ = registry.wait();
    catalog
        .assert_success()
        .assert_stdout_contains(&format!("group/sub/{name}"));
}

#[test]
fn list_tags_follows_pagination_filters_and_sorts() {
    let (sandbox, home, work, repository) = registry_test("tags");
    let (tar, _) = one_file_tar(work.path(), &format!("{repository}:x"), ("t", b"tags"));
    push_under_tags(
        &sandbox,
        &tar,
        &repository,
        &["1.10.0", "1.2.0", "v1.9", "latest", "2.0.0"],
    );
    let target = format!("{}/{repository}", sandbox.registry);
    let all = home
        .bunker()
        .env("BUNKER_REGISTRY_PAGE_SIZE", "2")
        .args(["registry", "list-tags", &target])
        .run();
    all.assert_success();
    assert_eq!(
        all.stdout.lines().collect::<Vec<_>>(),
        ["1.2.0", "v1.9", "1.10.0", "2.0.0", "latest"]
    );
    let filtered = list_tags(&home, &target, &["--semver", ">=1.5, <2", "--json"]);
    filtered.assert_success();
    let json: serde_json::Value = serde_json::from_str(&filtered.stdout).unwrap();
    assert_eq!(json["tags"], serde_json::json!(["v1.9", "1.10.0"]));
    let regex = list_tags(&home, &target, &["--filter", "1\\..*"]);
    regex.assert_success();
    assert_eq!(
        regex.stdout.lines().collect::<Vec<_>>(),
        ["1.2.0", "1.10.0"]
    );
}

#[test]
fn sync_copies_then_an_unchanged_resync_moves_no_blob() {
    let (sandbox, home, work, repository) = registry_test("sync");
    let (tar, _) = docker_save_tar(
        work.path(),
        &format!("{repository}:1"),
        &[vec![("s".into(), noise(200_000, 3))]],
    );
    push_under_tags(&sandbox, &tar, &repository, &["1.0", "1.1", "edge"]);
    let proxy = FaultProxy::start(&sandbox.registry);
    let config = write_file(
        work.path(),
        "sync.yaml",
        &format!(
            "repositories:\n  - source: {proxy}/{repository}\n    destination: archive\n    format: oci\n    semver: '>=1.0'\n  - source: {proxy}/{repository}\n    destination: {proxy}/mirror/{repository}\n    tags: [edge]\n  - source: archive\n    repository: {repository}\n    destination: {proxy}/restored/{repository}\n    tag_regex: '1\\.1'\n",
            proxy = proxy.address
        ),
    );
    let archive = work.path().join("archive");
    let sync = |extra: &[&str]| sync_run(&home, &config, &archive, extra);
    sync(&["--dry-run"])
        .assert_success()
        .assert_stdout_contains("would-copy");
    assert!(
        !proxy.seen().iter().any(|s| s.path.contains("/blobs/")),
        "a dry run moves no blob"
    );
    sync(&[])
        .assert_success()
        .assert_stdout_contains("4 copied");
    raw_manifest(&format!("{}/mirror/{repository}:edge", sandbox.registry));
    raw_manifest(&format!("{}/restored/{repository}:1.1", sandbox.registry));

    proxy.clear_seen();
    sync(&[])
        .assert_success()
        .assert_stdout_contains("0 copied, 4 up to date");
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .all(|s| s.method == "HEAD" || s.path.contains("/tags/list")),
        "an unchanged re-sync only lists tags and HEADs manifests: {seen:#?}"
    );
    let (manifests, blobs, tag_lists) = request_counts(&proxy);
    assert_eq!(
        manifests.len(),
        4,
        "one manifest request per synced tag: {manifests:#?}"
    );
    assert_eq!(blobs, 0);
    assert_eq!(
        tag_lists, 2,
        "the source listing for the semver filter and one destination listing"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["registry", "pull", "Bad/Name:1"],
            "invalid image reference",
        ),
        (
            vec!["registry", "pull", "localhost/app:1", "--platform", "amd64"],
            "expected os/arch",
        ),
        (vec!["registry", "pull"], "no image given"),
        (
            vec!["registry", "push", "--to", "nohost"],
            "must start with a registry host",
        ),
        (
            vec![
                "registry",
                "list-tags",
                "localhost/app",
                "--semver",
                "banana",
            ],
            "invalid semver range",
        ),
        (
            vec!["registry", "list-tags", "localhost/app", "--filter", "("],
            "invalid tag filter regex",
        ),
        (
            vec!["registry", "catalog", "a/b"],
            "expected a registry host",
        ),
        (
            vec!["login", "localhost:1", "--password-stdin"],
            "--username is required",
        ),
        (
            vec!["sync", "--config", "/nonexistent/sync.yaml"],
            "cannot read the sync config",
        ),
    ];
    for (args, message) in cases {
        home.bunker()
            .args(&args)
            .run()
            .assert_code(1)
            .assert_stderr_contains(message);
    }
    let missing = format!("{}/{}:1", sandbox.registry, unique_name("absent"));
    home.registry_pull(&home.path().join("archive"))
        .arg(&missing)
        .run()
        .assert_code(1)
        .assert_stderr_contains("MANIFEST_UNKNOWN");
}

#[test]
fn an_exhausted_rate_limit_pauses_instead_of_failing() {
    let (sandbox, home, work, repository) = registry_test("ratelimit");
    let (_, image_id) = push_one_file_image(
        &sandbox,
        work.path(),
        &format!("{repository}:1"),
        ("r", b"limited"),
    );
    let proxy = FaultProxy::start(&sandbox.registry);
    let exhausted = FaultAction::Respond {
        status: 429,
        headers: vec![
            ("RateLimit-Limit".into(), "100;w=21600".into()),
            ("RateLimit-Remaining".into(), "0;w=21600".into()),
            ("Retry-After".into(), "1".into()),
        ],
    };
    // More than the retry budget: pauses for an exhausted allowance do not count.
    proxy.add_rule(FaultRule::new("GET", "/manifests/", exhausted, 8));
    home.registry_pull(&work.path().join("archive"))
        .env("BUNKER_RETRY_ATTEMPTS", "3")
        .arg(format!("{}/{repository}:1", proxy.address))
        .run()
        .assert_success()
        .assert_stdout_contains(&image_id)
        .assert_stderr_contains("pull rate limit reached (0 pulls left); pausing 1s");
}

/// Pushes an amd64 and an arm64 image and a manifest list over them; returns
/// (list reference, amd64 image ID, arm64 image ID).
fn seed_multi_platform_image(
    sandbox: &Sandbox,
    work: &Path,
    repository: &str,
) -> (String, String, String) {
    let mut ids = Vec::new();
    let mut entries = Vec::new();
    for architecture in ["amd64", "arm64"] {
        let (tar, id) = registry_support::docker_save_tar_for(
            work,
            &format!("{repository}:{architecture}"),
            &[vec![("arch".into(), architecture.as_bytes().to_vec())]],
            architecture,
        );
        let reference = format!("{}/{repository}:{architecture}", sandbox.registry);
        skopeo_push(&tar, &reference, None);
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")));
        raw.assert_success();
        let bytes = raw.stdout.trim_end().as_bytes().to_vec();
        use sha2::Digest as _;
        let digest: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": format!("sha256:{digest}"),
            "size": bytes.len(),
            "platform": {"os": "linux", "architecture": architecture},
        }));
        ids.push(id);
    }
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": entries,
    });
    let list_file = work.join("list.json");
    std::fs::write(&list_file, serde_json::to_vec(&list).unwrap()).unwrap();
    let put = run(Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.docker.distribution.manifest.list.v2+json",
            "--data-binary",
        ])
        .arg(format!("@{}", list_file.display()))
        .arg(format!(
            "http://{}/v2/{repository}/manifests/multi",
            sandbox.registry
        )));
    put.assert_success();
    (
        format!("{}/{repository}:multi", sandbox.registry),
        ids[0].clone(),
        ids[1].clone(),
    )
}

#[test]
fn manifest_lists_select_one_platform_or_keep_them_all() {
    let (sandbox, home, work, repository) = registry_test("multi");
    let (reference, amd64_id, arm64_id) =
        seed_multi_platform_image(&sandbox, work.path(), &repository);
    let archive = work.path().join("archive");
    let pull = |extra: &[&str]| {
        home.registry_pull(&archive)
            .arg(&reference)
            .args(extra)
            .run()
    };
    pull(&["--platform", "linux/arm64"])
        .assert_success()
        .assert_stdout_contains(&arm64_id);
    assert_eq!(archive_files(&archive.join("aarch64")).len(), 1);
    pull(&[]).assert_success().assert_stdout_contains(&amd64_id);
    pull(&["--all-platforms"])
        .assert_success()
        .assert_stdout_contains(&amd64_id)
        .assert_stdout_contains(&arm64_id);
    assert_eq!(archive_files(&archive.join("x86_64")).len(), 1);
    pull(&["--platform", "linux/s390x"])
        .assert_code(1)
        .assert_stderr_contains("offers linux/amd64, linux/arm64");

    // The OCI layout keeps the whole index, and a push recreates it.
    pull(&["--all-platforms", "--format", "oci"]).assert_success();
    let layout = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{repository}:multi", archive.display())));
    layout.assert_success();
    let index: serde_json::Value = serde_json::from_str(&layout.stdout).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let to = format!("{}/copied", sandbox.registry);
    home.registry_push(&to, &archive).run().assert_success();
    let pushed = raw_manifest(&format!("{to}/{repository}:multi"));
    assert_eq!(pushed["manifests"].as_array().unwrap().len(), 2, "{pushed}");
    let arm64 = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--override-arch", "arm64"])
        .arg(format!("docker://{to}/{repository}:multi")));
    arm64
        .assert_success()
        .assert_stdout_contains("\"Architecture\": \"arm64\"");
}

#[test]
fn large_blobs_are_uploaded_in_chunks_and_existing_blobs_skipped() {
    let (sandbox, home, work, repository) = registry_test("chunks");
    let (tar, image_id) = docker_save_tar(
        work.path(),
        &format!("{repository}:1"),
        &[vec![("big.bin".into(), noise(3 << 20, 11))]],
    );
    let proxy = FaultProxy::start(&sandbox.registry);
    let push = |extra: &[&str]| {
        home.registry_push(&proxy.address, &work.path().join("archive"))
            .arg(&tar)
            .args(extra)
            .run()
    };
    push(&["--chunk-size-mib", "1"])
        .assert_success()
        .assert_stdout_contains("2 uploaded");
    let patches = proxy.seen().iter().filter(|s| s.method == "PATCH").count();
    assert!(
        patches >= 4,
        "a 3 MiB layer in 1 MiB chunks takes at least 3 PATCHes plus the config: {patches}"
    );
    // A Docker Hub short name keeps its `library/` namespace, as skopeo sync does.
    let pushed = raw_manifest(&format!("{}/library/{repository}:1", sandbox.registry));
    assert_eq!(pushed["config"]["digest"].as_str(), Some(image_id.as_str()));
    proxy.clear_seen();
    push(&["--overwrite"])
        .assert_success()
        .assert_stdout_contains("[up to date]");
    assert!(
        !proxy
            .seen()
            .iter()
            .any(|s| s.method == "PATCH" || s.method == "PUT")
    );
}

#[test]
fn credential_helpers_supply_and_store_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let (sandbox, home, work, repository) = registry_test("helper");
    // A docker-credential helper speaking the real protocol: `get` reads the
    // server on stdin and prints JSON; `store` reads JSON on stdin.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let stored = work.path().join("stored.json");
    let helper = bin.join("docker-credential-bunkertest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  get) read server; printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\" ;;\n  store) cat > {stored} ;;\n  *) exit 1 ;;\nesac\n",
            user = sandbox.auth_user,
            password = sandbox.auth_password,
            stored = stored.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = home.path().join(".docker").join("config.json");

    // credHelpers entry for the auth registry.
    std::fs::write(
        &config,
        format!(
            r#"{{"credHelpers":{{"{}":"bunkertest"}}}}"#,
            sandbox.auth_registry
        ),
    )
    .unwrap();
    let (tar, _) = one_file_tar(work.path(), &format!("{repository}:1"), ("h", b"helper"));
    let auth_file = auth_registry_auth_file(&sandbox);
    skopeo_push(
        &tar,
        &format!("{}/{repository}:1", sandbox.auth_registry),
        Some(auth_file.path()),
    );
    home.bunker()
        .env("PATH", &path)
        .args([
            "registry",
            "list-tags",
            &format!("{}/{repository}", sandbox.auth_registry),
        ])
        .run()
        .assert_success()
        .assert_stdout_contains("1");

    // credsStore: `bunker login` hands the credentials to the helper.
    std::fs::write(&config, r#"{"credsStore":"bunkertest"}"#).unwrap();
    let login = |password: &str| {
        common::run_with_stdin(
            &mut common::login_command(&home, &sandbox)
                .env("PATH", &path)
                .into_command(),
            format!("{password}\n").as_bytes(),
        )
    };
    let output = login(&sandbox.auth_password);
    output.assert_success();
    assert!(
        output
            .stdout
            .contains("credential helper docker-credential-bunkertest")
    );
    let saved: serde_json::Value = serde_json::from_str(&common::read_text(&stored)).unwrap();
    assert_eq!(saved["ServerURL"], sandbox.auth_registry.as_str());
    assert_eq!(saved["Secret"], sandbox.auth_password.as_str());
    assert!(
        !common::read_text(&config).contains(&sandbox.auth_password),
        "no password in config.json"
    );

    // A wrong password is refused and not stored.
    std::fs::remove_file(&stored).unwrap();
    let output = login("wrong");
    assert_eq!(output.code, Some(1));
    assert!(output.stderr.contains("refused the credentials"));
    assert!(!stored.exists());
}

#[test]
fn from_file_lists_are_read_and_bad_lines_named() {
    let (sandbox, home, work, _) = registry_test("from-file");
    let list = write_file(
        work.path(),
        "images.txt",
        &format!(
            "# images to keep\n{}\n\n{}  # again\n",
            sandbox.registry_image, sandbox.registry_image
        ),
    );
    home.registry_pull(&work.path().join("archive"))
        .arg("--from-file")
        .arg(&list)
        .args(["--format", "oci"])
        .run()
        .assert_success()
        .assert_stdout_contains("1 image(s), 0 failed");
    std::fs::write(&list, "ok/image:1\nNot A Reference\n").unwrap();
    home.bunker()
        .args(["registry", "pull", "--from-file"])
        .arg(&list)
        .run()
        .assert_code(1)
        .assert_stderr_contains(&format!("{}:2", list.display()));
}

/// Pushes `tar` to the plain registry as `repository:tag` for each of `tags`.
fn push_under_tags(sandbox: &Sandbox, tar: &Path, repository: &str, tags: &[&str]) {
    for tag in tags {
        skopeo_push(
            tar,
            &format!("{}/{repository}:{tag}", sandbox.registry),
            None,
        );
    }
}

/// `bunker registry list-tags REPOSITORY EXTRA...`.
fn list_tags(home: &TestHome, repository: &str, extra: &[&str]) -> Output {
    home.bunker()
        .args(["registry", "list-tags", repository])
        .args(extra)
        .run()
}

/// `bunker sync --config CONFIG --archive-dir ARCHIVE EXTRA...`.
fn sync_run(home: &TestHome, config: &Path, archive: &Path, extra: &[&str]) -> Output {
    home.sync(config, archive).args(extra).run()
}

/// Pushes one small distinct image per tag to the plain registry; returns their image IDs.
fn seed_tags(
    sandbox: &Sandbox,
    work: &Path,
    repository: &str,
    tags: &[&str],
    seed: u64,
) -> Vec<String> {
    let mut image_ids = Vec::new();
    for (offset, tag) in tags.iter().enumerate() {
        let content = noise(50_000, seed + offset as u64);
        let (_, id) = push_one_file_image(
            sandbox,
            work,
            &format!("{repository}:{tag}"),
            ("t", &content),
        );
        image_ids.push(id);
    }
    image_ids
}

/// Points `repository_and_tag` in the plain registry at another image (`<repository>:other`,
/// built in `work`).
fn repoint_tag(sandbox: &Sandbox, work: &Path, repository: &str, repository_and_tag: &str) {
    let (other, _) = one_file_tar(
        work,
        &format!("{repository}:other"),
        ("t", b"someone else's image"),
    );
    skopeo_push(
        &other,
        &format!("{}/{repository_and_tag}", sandbox.registry),
        None,
    );
}

/// Requests the proxy forwarded, by kind: (manifest requests, blob requests, tag lists).
fn request_counts(proxy: &FaultProxy) -> (Vec<String>, usize, usize) {
    let seen = proxy.seen();
    let manifests = seen
        .iter()
        .filter(|s| s.path.contains("/manifests/"))
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    let blobs = seen.iter().filter(|s| s.path.contains("/blobs/")).count();
    let tag_lists = seen
        .iter()
        .filter(|s| s.path.contains("/tags/list"))
        .count();
    (manifests, blobs, tag_lists)
}

/// The digest a registry tag points to (`HEAD` with every manifest type accepted).
fn tag_digest(registry: &str, repository_and_tag: &str) -> String {
    let (repository, tag) = repository_and_tag.rsplit_once(':').unwrap();
    let head = run(Command::new("curl").args([
        "-sfI",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        &format!("http://{registry}/v2/{repository}/manifests/{tag}"),
    ]));
    head.assert_success();
    head.stdout
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("docker-content-digest")
                .then(|| value.trim().to_string())
        })
        .expect("Docker-Content-Digest header")
}

#[test]
fn registry_to_registry_resync_costs_one_manifest_request_per_tag_and_repairs_the_destination() {
    let (sandbox, home, work, repository) = registry_test("r2r");
    let tags = ["1.0", "1.1", "1.2"];
    seed_tags(&sandbox, work.path(), &repository, &tags, 40);
    let proxy = FaultProxy::start(&sandbox.registry);
    let mirror = format!("mirror/{repository}");
    let config = write_file(
        work.path(),
        "sync.yaml",
        &format!(
            "repositories:\n  - source: {proxy}/{repository}\n    destination: {proxy}/{mirror}\n    tags: ['1.0', '1.1', '1.2']\n",
            proxy = proxy.address
        ),
    );
    let archive = work.path().join("archive");
    let sync = |extra: &[&str]| sync_run(&home, &config, &archive, extra);
    sync(&[])
        .assert_success()
        .assert_stdout_contains("3 copied");

    // Unchanged: one manifest HEAD per tag (the source's), one tag list for
    // the destination repository, no blob.
    proxy.clear_seen();
    sync(&[])
        .assert_success()
        .assert_stdout_contains("0 copied, 3 up to date");
    let (manifests, blobs, tag_lists) = request_counts(&proxy);
    assert_eq!(
        manifests,
        tags.iter()
            .map(|tag| format!("HEAD /v2/{repository}/manifests/{tag}"))
            .collect::<Vec<_>>(),
        "one source HEAD per tag and nothing else"
    );
    assert_eq!(blobs, 0, "no blob request");
    assert_eq!(tag_lists, 1, "one tag list for the destination repository");

    // A deleted destination tag is missing from the list: HEAD, copy again.
    let deleted = tag_digest(&sandbox.registry, &format!("{mirror}:1.1"));
    let delete = run(Command::new("curl").args([
        "-sf",
        "-X",
        "DELETE",
        &format!(
            "http://{}/v2/{mirror}/manifests/{deleted}",
            sandbox.registry
        ),
    ]));
    delete.assert_success();
    proxy.clear_seen();
    sync(&[])
        .assert_success()
        .assert_stdout_contains(&format!("copied {}/{repository}:1.1", proxy.address))
        .assert_stdout_contains("1 copied, 2 up to date");
    assert_eq!(
        tag_digest(&sandbox.registry, &format!("{mirror}:1.1")),
        deleted
    );
    let (manifests, _, _) = request_counts(&proxy);
    assert!(
        manifests.contains(&format!("HEAD /v2/{mirror}/manifests/1.1")),
        "the missing tag is asked for: {manifests:#?}"
    );

    // A destination tag re-pointed to another image keeps its name in the tag
    // list; --verify-destination HEADs every destination tag and repairs it.
    repoint_tag(&sandbox, work.path(), &repository, &format!("{mirror}:1.2"));
    let expected = tag_digest(&sandbox.registry, &format!("{repository}:1.2"));
    assert_ne!(
        tag_digest(&sandbox.registry, &format!("{mirror}:1.2")),
        expected
    );
    proxy.clear_seen();
    sync(&["--verify-destination"])
        .assert_success()
        .assert_stdout_contains(&format!("copied {}/{repository}:1.2", proxy.address))
        .assert_stdout_contains("1 copied, 2 up to date");
    assert_eq!(
        tag_digest(&sandbox.registry, &format!("{mirror}:1.2")),
        expected
    );
    let (manifests, _, tag_lists) = request_counts(&proxy);
    let heads = manifests.iter().filter(|m| m.starts_with("HEAD")).count();
    assert!(
        heads >= 6,
        "two HEADs per tag when verifying: {manifests:#?}"
    );
    assert_eq!(tag_lists, 0, "verifying needs no tag list");

    // Without the state the destination HEAD decides, and nothing moves.
    std::fs::remove_file(archive.join(".bunker/sync-state.json")).unwrap();
    proxy.clear_seen();
    sync(&[])
        .assert_success()
        .assert_stdout_contains("0 copied, 3 up to date");
    let (manifests, blobs, _) = request_counts(&proxy);
    assert_eq!(
        manifests.len(),
        6,
        "source and destination HEAD per tag: {manifests:#?}"
    );
    assert_eq!(blobs, 0);
}

#[test]
fn sync_pushes_the_docker_archives_that_registry_pull_wrote() {
    let (sandbox, home, work, repository) = registry_test("fromarchive");
    let image_ids = seed_tags(&sandbox, work.path(), &repository, &["1", "2"], 70);
    let (multi, amd64_id, arm64_id) = seed_multi_platform_image(&sandbox, work.path(), &repository);
    let archive = work.path().join("archive");
    for (tag, compression) in [("1", "gzip"), ("2", "zstd")] {
        home.registry_pull(&archive)
            .args(["--compression", compression])
            .arg(format!("{}/{repository}:{tag}", sandbox.registry))
            .run()
            .assert_success();
    }
    home.registry_pull(&archive)
        .args(["--all-platforms", &multi])
        .run()
        .assert_success();
    assert!(
        !archive.join("index.json").exists(),
        "docker archives only, no OCI layout"
    );
    assert!(
        walkdir::WalkDir::new(&archive)
            .into_iter()
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().ends_with(".tar.zst")),
        "tag 2 is archived with zstd"
    );
    let proxy = FaultProxy::start(&sandbox.registry);
    let restored = format!("restored/{repository}");
    let config = work.path().join("sync.yaml");
    let write_config = |filter: &str| {
        std::fs::write(
            &config,
            format!(
                "repositories:\n  - source: archive\n    repository: {repository}\n    destination: {}/{restored}\n{filter}",
                proxy.address
            ),
        )
        .unwrap()
    };
    let sync = || sync_run(&home, &config, &archive, &[]);
    write_config("    tags: ['1']\n");
    sync().assert_success().assert_stdout_contains("1 copied");
    let config_digest = |tag: &str| {
        raw_manifest(&format!("{}/{restored}:{tag}", sandbox.registry))["config"]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(config_digest("1"), image_ids[0]);

    // Unchanged: one HEAD on the destination tag, no blob.
    proxy.clear_seen();
    sync()
        .assert_success()
        .assert_stdout_contains("0 copied, 1 up to date");
    let (manifests, blobs, _) = request_counts(&proxy);
    assert_eq!(manifests, [format!("HEAD /v2/{restored}/manifests/1")]);
    assert_eq!(blobs, 0);

    // The HEAD goes to the destination, so a re-pointed tag is repaired.
    repoint_tag(&sandbox, work.path(), &repository, &format!("{restored}:1"));
    assert_ne!(config_digest("1"), image_ids[0]);
    sync()
        .assert_success()
        .assert_stdout_contains("1 copied, 0 up to date");
    assert_eq!(config_digest("1"), image_ids[0]);

    // Every tag: the two platforms archived as `multi` are ambiguous…
    write_config("");
    sync()
        .assert_code(1)
        .assert_stderr_contains("2 archived images are tagged multi")
        .assert_stderr_contains("set `platform:` on the entry");
    // …until the entry names one; the rest goes on.
    write_config("    platform: linux/arm64\n");
    sync()
        .assert_success()
        .assert_stdout_contains("2 copied, 1 up to date");
    assert_eq!(config_digest("2"), image_ids[1]);
    assert_eq!(config_digest("multi"), arm64_id);
    assert_ne!(amd64_id, arm64_id);
}

#[test]
fn the_default_platform_is_the_target_engines_unless_named() {
    let (sandbox, home, work, repository) = registry_test("platform");
    let (multi, amd64_id, arm64_id) = seed_multi_platform_image(&sandbox, work.path(), &repository);
    let info = home
        .bunker()
        .remote(&sandbox)
        .args(["engine", "info", "--json"])
        .run();
    info.assert_success();
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    let engine_platform = info["platform"].as_str().unwrap().to_string();
    let image_for = |platform: &str| match platform {
        "linux/amd64" => &amd64_id,
        "linux/arm64" => &arm64_id,
        other => panic!("the sandbox engine runs on {other}, which the test image lacks"),
    };
    let archive = work.path().join("archive");
    let pull = |command: common::BunkerCommand, extra: &[&str]| {
        let output = command
            .args(["registry", "pull", &multi, "--json", "--archive-dir"])
            .arg(&archive)
            .args(extra)
            .run();
        output.assert_success();
        let report: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
        (output, report)
    };

    // DOCKER_HOST names the engine: its platform, said on stderr and in --json.
    let (output, report) = pull(home.bunker().remote(&sandbox), &[]);
    output
        .assert_stderr_contains(&format!("platform {engine_platform}: the engine's ("))
        .assert_stderr_contains("from DOCKER_HOST)");
    assert_eq!(report["platform"]["platform"], engine_platform.as_str());
    assert_eq!(report["platform"]["chosen_by"], "engine");
    assert_eq!(
        report["images"][0]["images"][0]["image_id"],
        image_for(&engine_platform).as_str()
    );

    // DOCKER_DEFAULT_PLATFORM wins over the engine, which is then not asked
    // (an unreachable one does not matter).
    let (output, report) = pull(
        home.bunker()
            .env("DOCKER_HOST", "ssh://nobody@127.0.0.1:1")
            .env("DOCKER_DEFAULT_PLATFORM", "linux/arm64"),
        &[],
    );
    output.assert_stderr_contains("platform linux/arm64: from DOCKER_DEFAULT_PLATFORM");
    assert_eq!(report["platform"]["chosen_by"], "docker_default_platform");
    assert_eq!(
        report["images"][0]["images"][0]["image_id"],
        arm64_id.as_str()
    );

    // --platform wins over both.
    let (output, report) = pull(
        home.bunker()
            .remote(&sandbox)
            .env("DOCKER_DEFAULT_PLATFORM", "linux/arm64"),
        &["--platform", "linux/amd64"],
    );
    output.assert_stderr_contains("platform linux/amd64: given with --platform");
    assert_eq!(report["platform"]["chosen_by"], "flag");
    assert_eq!(
        report["images"][0]["images"][0]["image_id"],
        amd64_id.as_str()
    );

    // No engine configured: the workstation's, without trying any engine.
    let (output, report) = pull(home.bunker(), &[]);
    output.assert_stderr_contains("this workstation's (no engine is configured)");
    assert_eq!(report["platform"]["chosen_by"], "workstation");

    // A configured engine that cannot be reached fails with the way out.
    home.registry_pull(&archive)
        .env("DOCKER_HOST", "ssh://nobody@127.0.0.1:1")
        .arg(&multi)
        .run()
        .assert_code(1)
        .assert_stderr_contains(
            "cannot read the platform of the engine ssh://nobody@127.0.0.1:1 (from DOCKER_HOST)",
        )
        .assert_stderr_contains("--platform os/arch or DOCKER_DEFAULT_PLATFORM");

    // sync takes the same default for entries without `platform:`.
    let config = write_file(
        work.path(),
        "sync.yaml",
        &format!(
            "repositories:\n  - source: {}/{repository}\n    destination: archive\n    tags: [multi]\n",
            sandbox.registry
        ),
    );
    let output = home
        .bunker()
        .remote(&sandbox)
        .args(["sync", "--json", "--config"])
        .arg(&config)
        .arg("--archive-dir")
        .arg(work.path().join("synced"))
        .run();
    output
        .assert_success()
        .assert_stderr_contains(&format!("platform {engine_platform}: the engine's ("));
    let report: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(report["platform"]["chosen_by"], "engine");
    assert_eq!(report["records"][0]["action"], "copied");
}

#[test]
fn a_resync_to_the_archive_rewrites_a_deleted_archive_file() {
    let (sandbox, home, work, repository) = registry_test("rearchive");
    let image_ids = seed_tags(&sandbox, work.path(), &repository, &["1"], 90);
    let proxy = FaultProxy::start(&sandbox.registry);
    let config = write_file(
        work.path(),
        "sync.yaml",
        &format!(
            "repositories:\n  - source: {}/{repository}\n    destination: archive\n    tags: ['1']\n",
            proxy.address
        ),
    );
    let archive = work.path().join("archive");
    let sync = || sync_run(&home, &config, &archive, &[]);
    sync().assert_success().assert_stdout_contains("1 copied");
    let files = archive_files(&archive);
    assert_eq!(files.len(), 1, "{files:?}");
    sync()
        .assert_success()
        .assert_stdout_contains("0 copied, 1 up to date");

    std::fs::remove_file(&files[0]).unwrap();
    proxy.clear_seen();
    sync()
        .assert_success()
        .assert_stdout_contains("1 copied, 0 up to date");
    // Written again under a name the manifest did not list (then switched to).
    let rewritten = archive_files(&archive);
    assert_eq!(
        rewritten.len(),
        1,
        "the archive file is written again: {rewritten:?}"
    );
    assert_eq!(
        proxy.body_bytes("/blobs/"),
        0,
        "its blobs come from the archive's blob cache"
    );
    let loaded = format!("{}/{repository}:1", proxy.address);
    docker_ok(&sandbox, ["load", "-i", rewritten[0].to_str().unwrap()]);
    assert_eq!(
        image_id(&sandbox, &loaded).as_deref(),
        Some(image_ids[0].as_str())
    );
    docker_ok(&sandbox, ["rmi", &loaded]);
}

#[test]
fn a_sync_entry_that_selects_no_tag_fails_naming_the_tags_and_the_rest_still_syncs() {
    let (sandbox, home, work, repository) = registry_test("notag");
    seed_tags(&sandbox, work.path(), &repository, &["1.36", "latest"], 120);
    // `^1\.` is a search pattern; tag_regex must match the whole tag.
    let config = write_file(
        work.path(),
        "sync.yaml",
        &format!(
            "repositories:\n  - source: {registry}/{repository}\n    destination: {registry}/mirror/{repository}\n    tag_regex: '^1\\.'\n  - source: {registry}/{repository}\n    destination: archive\n    tags: ['latest']\n",
            registry = sandbox.registry
        ),
    );
    let archive = work.path().join("archive");
    let run = sync_run(&home, &config, &archive, &["--keep-going"]);
    run.assert_code(1)
        .assert_stderr_contains(&format!(
            "no tag of {}/{repository} matches tag_regex",
            sandbox.registry
        ))
        .assert_stderr_contains("(it has 1.36, latest)")
        .assert_stderr_contains("must match the whole tag")
        .assert_stdout_contains("1 copied")
        .assert_stdout_contains("1 failed");
    assert_eq!(
        archive_files(&archive).len(),
        1,
        "the second entry still ran"
    );
}
