//! The fault suite's "misbehaving registry" (issue #10) and the second full fetch of a
//! corrupt blob (issue #11 item 5): `bunker registry pull` through the loopback
//! fault proxy of `registry_support`, in front of the sandbox's real registry. Each
//! test injects one kind of fault, checks that the pull survives it (or fails clearly
//! when it cannot), and prints one figures line:
//! `FAULTS registry: fault=<name> injected=<n> fetched/unique=<ratio> corrupt_in_cache=<n>`.
//! `registry push` and `sync` get the cheap faults too. The SIGKILL matrix kills
//! `registry pull`, `registry push` and `sync` at 8 points each, picked by the
//! requests the proxy has seen, and prints `FAULTS registry-kill: ...`.

mod common;
mod registry_support;
mod signal_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BunkerCommand, Output, Sandbox, TestHome, run, unique_name};
use registry_support::{
    FaultAction, FaultProxy, FaultRule, Seeded, Seen, docker_save_tar, noise, registry_test,
    seed_big_image, skopeo_push, write_file,
};
use sha2::{Digest, Sha256};
use signal_support::Running;

/// Incompressible bytes in the big layer: big enough that 40 % is a real cut.
const BIG_BYTES: usize = 1 << 20;

/// Seeds `bunker-test/<name>:1` (`name` unique to the test) with a big layer of
/// [`BIG_BYTES`].
fn seed(sandbox: &Sandbox, work: &Path, name: &str) -> Seeded {
    seed_big_image(sandbox, work, &format!("bunker-test/{name}"), BIG_BYTES)
}

/// A fault test's start: the seeded image (`bunker-test/<unique>:1`) and a fault proxy
/// in front of the registry: (HOME, work directory, seeded image, proxy).
fn seeded_behind_proxy(prefix: &str) -> (TestHome, tempfile::TempDir, Seeded, FaultProxy) {
    let (sandbox, home, work, name) = registry_test(prefix);
    let seeded = seed(&sandbox, work.path(), &name);
    let proxy = FaultProxy::start(&sandbox.registry);
    (home, work, seeded, proxy)
}

/// `action` on the next `times` GETs of the seeded image's big blob.
fn on_big_blob(proxy: &FaultProxy, seeded: &Seeded, action: FaultAction, times: usize) {
    proxy.add_rule(FaultRule::new("GET", &seeded.big_digest, action, times));
}

/// `bunker registry pull` of the seeded image through the proxy (short backoff:
/// the faults, not the waiting, are under test).
fn pull(home: &TestHome, proxy: &FaultProxy, seeded: &Seeded, archive: &Path) -> Output {
    home.registry_pull(archive)
        .env("BUNKER_RETRY_INITIAL_MS", "20")
        .arg(format!("{}/{}", proxy.address, seeded.repository_and_tag))
        .run()
}

/// `bunker registry push --jobs 1` of `tars` to `to` (short backoff).
fn push_all(home: &TestHome, to: &str, tars: &[PathBuf], archive: &Path) -> BunkerCommand {
    home.registry_push(to, archive)
        .env("BUNKER_RETRY_INITIAL_MS", "20")
        .args(["--jobs", "1"])
        .args(tars)
}

/// `bunker sync` of `config` (short backoff).
fn sync(home: &TestHome, config: &Path, archive: &Path) -> BunkerCommand {
    home.sync(config, archive)
        .env("BUNKER_RETRY_INITIAL_MS", "20")
}

fn cache_files(archive: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(archive.join("blobs/sha256")) {
        Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Files in the blob cache that are not a blob whose content hashes to its name
/// (a corrupt blob, or a partial download left behind).
fn corrupt_in_cache(archive: &Path) -> Vec<PathBuf> {
    cache_files(archive)
        .into_iter()
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let content = std::fs::read(path).expect("read a cached blob");
            let actual: String = Sha256::digest(&content)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            actual != name
        })
        .collect()
}

/// Whether a cache file is named as a finished blob (64 hex digits), not a
/// partial download or a temporary file.
fn is_blob_name(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name.len() == 64 && name.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Partial and temporary files anywhere in an archive (reported in the kill figures).
fn leftovers(archive: &Path) -> usize {
    walkdir::WalkDir::new(archive)
        .into_iter()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy();
            name.contains(".partial") || name.contains(".tmp-")
        })
        .count()
}

/// Requests for the big blob, in arrival order.
fn big_blob_requests(proxy: &FaultProxy, seeded: &Seeded) -> Vec<Seen> {
    proxy
        .seen()
        .into_iter()
        .filter(|seen| seen.method == "GET" && seen.path.contains(&seeded.big_digest))
        .collect()
}

/// Prints the figures line of one fault, then checks that no file in the blob cache is
/// corrupt (what every fault must leave); returns fetched/unique.
#[track_caller]
fn figures(fault: &str, proxy: &FaultProxy, seeded: &Seeded, archive: &Path) -> f64 {
    let fetched: u64 = seeded
        .blobs
        .iter()
        .map(|(digest, _)| proxy.body_bytes(digest))
        .sum();
    let ratio = fetched as f64 / seeded.unique_bytes() as f64;
    let corrupt = corrupt_in_cache(archive);
    println!(
        "FAULTS registry: fault={fault} injected={} fetched/unique={ratio:.2} corrupt_in_cache={}",
        proxy.faults_injected(),
        corrupt.len()
    );
    assert_eq!(
        corrupt,
        Vec::<PathBuf>::new(),
        "{fault}: corrupt files in the blob cache"
    );
    ratio
}

/// The blobs of the seeded image are all in the cache, each intact.
fn assert_cached(archive: &Path, seeded: &Seeded) {
    assert_eq!(corrupt_in_cache(archive), Vec::<PathBuf>::new());
    for (digest, size) in &seeded.blobs {
        let path = archive
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        assert_eq!(
            std::fs::metadata(&path).map(|m| m.len()).ok(),
            Some(*size),
            "{digest} is cached whole"
        );
    }
}

#[test]
fn too_many_requests_waits_for_retry_after_before_asking_again() {
    let (home, work, seeded, proxy) = seeded_behind_proxy("fault-429");
    let too_many = FaultAction::too_many_requests(2);
    proxy.add_rule(FaultRule::new("GET", "/manifests/", too_many.clone(), 1));
    on_big_blob(&proxy, &seeded, too_many, 1);
    let archive = work.path().join("archive");
    pull(&home, &proxy, &seeded, &archive)
        .assert_success()
        .assert_stdout_contains(&seeded.image_id);

    // The backoff alone would come back after 10-20 ms: the repetition coming at
    // least the 2 s the server asked for later shows Retry-After was honoured.
    let seen = proxy.seen();
    for needle in ["/manifests/", seeded.big_digest.as_str()] {
        let requests: Vec<&Seen> = seen
            .iter()
            .filter(|seen| seen.method == "GET" && seen.path.contains(needle))
            .collect();
        assert!(requests.len() >= 2, "{needle} asked again: {seen:#?}");
        assert_eq!(requests[0].status, 429, "{seen:#?}");
        assert_eq!(requests[1].status, 200, "{seen:#?}");
        let waited = requests[1].at.duration_since(requests[0].at);
        assert!(
            waited >= std::time::Duration::from_secs(2),
            "{needle} asked again after {waited:?}, before the Retry-After of 2 s"
        );
    }
    let ratio = figures("429-retry-after", &proxy, &seeded, &archive);
    assert!(ratio <= 1.0, "no byte fetched twice: {ratio}");
    assert_cached(&archive, &seeded);
}

#[test]
fn service_unavailable_on_manifests_is_retried() {
    let (home, work, seeded, proxy) = seeded_behind_proxy("fault-503");
    proxy.add_rule(FaultRule::new(
        "GET",
        "/manifests/",
        FaultAction::unavailable(),
        3,
    ));
    let archive = work.path().join("archive");
    pull(&home, &proxy, &seeded, &archive)
        .assert_success()
        .assert_stdout_contains(&seeded.image_id);
    let manifests: Vec<u16> = proxy
        .seen()
        .iter()
        .filter(|seen| seen.path.contains("/manifests/"))
        .map(|seen| seen.status)
        .collect();
    assert_eq!(&manifests[..4], &[503, 503, 503, 200], "{manifests:?}");
    assert_eq!(figures("503-manifest", &proxy, &seeded, &archive), 1.0);
    assert_cached(&archive, &seeded);
}

#[test]
fn a_connection_cut_at_40_percent_of_a_blob_resumes_with_only_the_rest() {
    let (home, work, seeded, proxy) = seeded_behind_proxy("fault-cut");
    let cut = seeded.big_size as usize * 2 / 5;
    on_big_blob(&proxy, &seeded, FaultAction::CutAfter(cut), 1);
    let archive = work.path().join("archive");
    pull(&home, &proxy, &seeded, &archive).assert_success();
    let requests = big_blob_requests(&proxy, &seeded);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].range, None);
    assert_eq!(requests[0].body_bytes, cut as u64);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={cut}-{}", seeded.big_size - 1).as_str()),
        "the resume asks only for the rest"
    );
    let fetched = proxy.body_bytes(&seeded.big_digest);
    assert!(
        fetched <= seeded.big_size + 4096,
        "{fetched} bytes fetched for a blob of {}",
        seeded.big_size
    );
    figures("cut40", &proxy, &seeded, &archive);
    assert_cached(&archive, &seeded);
}

#[test]
fn a_flipped_byte_is_discarded_and_the_blob_fetched_once_more_in_full() {
    let (home, work, seeded, proxy) = seeded_behind_proxy("fault-flip");
    // The first answer is cut short, the resumed (ranged) rest has a flipped byte:
    // the second attempt must not trust the kept bytes either.
    let cut = seeded.big_size as usize / 2;
    on_big_blob(&proxy, &seeded, FaultAction::CutAfter(cut), 1);
    on_big_blob(&proxy, &seeded, FaultAction::Corrupt, 1);
    let archive = work.path().join("archive");
    pull(&home, &proxy, &seeded, &archive)
        .assert_success()
        .assert_stdout_contains(&seeded.image_id)
        .assert_stderr_contains(&format!("blob {}", seeded.big_digest))
        .assert_stderr_contains("fetching it once more in full");
    let requests = big_blob_requests(&proxy, &seeded);
    let ranges: Vec<Option<&str>> = requests.iter().map(|seen| seen.range.as_deref()).collect();
    assert_eq!(ranges.len(), 3, "{requests:#?}");
    assert!(ranges[1].is_some(), "the cut is resumed: {requests:#?}");
    assert_eq!(
        ranges[2], None,
        "the second attempt is in full: {requests:#?}"
    );
    assert_eq!(requests[2].body_bytes, seeded.big_size);
    figures("flipped-byte-once", &proxy, &seeded, &archive);
    assert_cached(&archive, &seeded);
}

#[test]
fn a_blob_corrupt_on_every_attempt_fails_naming_both_attempts_and_caches_nothing() {
    let (home, work, seeded, proxy) = seeded_behind_proxy("fault-flip-always");
    on_big_blob(&proxy, &seeded, FaultAction::Corrupt, 100);
    let archive = work.path().join("archive");
    let output = pull(&home, &proxy, &seeded, &archive);
    output
        .assert_code(1)
        .assert_stderr_contains(&format!("blob {}", seeded.big_digest))
        .assert_stderr_contains("digest mismatch on both attempts")
        .assert_stderr_contains("attempt 1 (fetched in full")
        .assert_stderr_contains("attempt 2 (fetched in full");
    let requests = big_blob_requests(&proxy, &seeded);
    assert_eq!(requests.len(), 2, "exactly two attempts: {requests:#?}");
    assert!(requests.iter().all(|seen| seen.range.is_none()));
    figures("flipped-byte-always", &proxy, &seeded, &archive);
    let hex = seeded.big_digest.trim_start_matches("sha256:");
    assert!(
        cache_files(&archive)
            .iter()
            .all(|path| !path.to_string_lossy().contains(hex)),
        "nothing of the corrupt blob stays: {:?}",
        cache_files(&archive)
    );
    let archives: Vec<_> = walkdir::WalkDir::new(&archive)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert!(archives.is_empty(), "no archive written: {archives:?}");
}

#[test]
fn a_content_length_shorter_or_longer_than_the_body_is_survived() {
    let (sandbox, home, work, _) = registry_test("fault-content-length");
    for (fault, delta) in [
        ("content-length-short", -50_000i64),
        ("content-length-long", 50_000),
    ] {
        let seeded = seed(&sandbox, work.path(), &unique_name(fault));
        let proxy = FaultProxy::start(&sandbox.registry);
        on_big_blob(&proxy, &seeded, FaultAction::WrongLength(delta), 1);
        let archive = work.path().join(fault);
        pull(&home, &proxy, &seeded, &archive)
            .assert_success()
            .assert_stdout_contains(&seeded.image_id);
        let requests = big_blob_requests(&proxy, &seeded);
        assert!(requests.len() <= 2, "at most one repetition: {requests:#?}");
        if delta < 0 {
            let kept = (seeded.big_size as i64 + delta) as u64;
            assert_eq!(
                requests[1].range.as_deref(),
                Some(format!("bytes={kept}-{}", seeded.big_size - 1).as_str()),
                "only what the short answer lacked is asked for: {requests:#?}"
            );
        }
        let ratio = figures(fault, &proxy, &seeded, &archive);
        assert!(ratio < 1.1, "{ratio}");
        assert_cached(&archive, &seeded);
    }
}

#[test]
fn a_slow_drip_completes_without_a_timeout() {
    let (home, work, seeded, proxy) = seeded_behind_proxy("fault-drip");
    on_big_blob(
        &proxy,
        &seeded,
        FaultAction::Drip {
            chunk: 1024,
            pause_ms: 2,
        },
        1,
    );
    let archive = work.path().join("archive");
    pull(&home, &proxy, &seeded, &archive)
        .assert_success()
        .assert_stdout_contains(&seeded.image_id);
    let requests = big_blob_requests(&proxy, &seeded);
    assert_eq!(requests.len(), 1, "dripped in one request: {requests:#?}");
    assert_eq!(figures("slow-drip", &proxy, &seeded, &archive), 1.0);
    assert_cached(&archive, &seeded);
}

// ---------------------------------------------------------------------------
// The SIGKILL matrix: `registry pull`, `sync` and `registry push` killed at points
// chosen by the requests the proxy has seen (every run starts again from the state
// the kill left), then checked and rerun.

/// At least this many kill points per command.
const KILL_POINTS: usize = 8;

/// Small layers, dripped through the proxy so that every kill point lands while
/// the run is still busy with that request or the next.
fn slow_blobs(proxy: &FaultProxy) {
    proxy.add_rule(FaultRule::new(
        "GET",
        "/blobs/",
        FaultAction::Drip {
            chunk: 16 * 1024,
            pause_ms: 1,
        },
        usize::MAX,
    ));
}

/// Three small images (two layers each, the first shared) in the sandbox registry:
/// (references without the registry, docker-save tars).
fn seed_small(sandbox: &Sandbox, work: &Path, name: &str) -> (Vec<String>, Vec<PathBuf>) {
    let repository = format!("bunker-test/{name}");
    let mut references = Vec::new();
    let mut tars = Vec::new();
    for tag in ["1", "2", "3"] {
        let repository_and_tag = format!("{repository}:{tag}");
        let (tar, _) = docker_save_tar(
            work,
            &repository_and_tag,
            &[
                vec![("a".into(), noise(150_000, tag.len() as u64 * 11 + 1))],
                vec![(format!("b{tag}"), noise(200_000, tag.as_bytes()[0] as u64))],
            ],
        );
        skopeo_push(
            &tar,
            &format!("{}/{repository_and_tag}", sandbox.registry),
            None,
        );
        references.push(repository_and_tag);
        tars.push(tar);
    }
    (references, tars)
}

/// The repository of the image in a tar of [`seed_small`], which `registry push` keeps
/// below `--to`: the tar is named after the image (`bunker-test_<name>_1-amd64.tar`).
fn source_repository(tar: &Path) -> String {
    let file_name = tar.file_name().unwrap().to_string_lossy().into_owned();
    file_name
        .split("_1-amd64")
        .next()
        .unwrap()
        .replacen('_', "/", 1)
}

/// `count` request numbers spread evenly over `1..=total`.
fn kill_points(total: usize, count: usize) -> Vec<usize> {
    assert!(
        total >= count,
        "the run makes only {total} requests: too few for {count} kill points"
    );
    let mut points: Vec<usize> = (0..count)
        .map(|index| 1 + index * (total - 1) / (count - 1))
        .collect();
    points.dedup();
    points
}

/// Runs `command` to the end through `proxy`; the number of requests it made.
fn uninterrupted_requests(proxy: &FaultProxy, mut command: Command) -> usize {
    proxy.clear_seen();
    run(&mut command).assert_success();
    proxy.seen().len()
}

/// One command's SIGKILL matrix: for each of [`KILL_POINTS`] points spread over the
/// `total` requests of an uninterrupted run, `command("k<point>")` is SIGKILLed once the
/// proxy has seen that many requests, then `check(name, point)` checks what the kill
/// left, reruns and compares. Returns the points and how many kills landed on a
/// running bunker.
fn kill_matrix(
    proxy: &FaultProxy,
    total: usize,
    command: impl Fn(&str) -> Command,
    mut check: impl FnMut(&str, usize),
) -> (Vec<usize>, usize) {
    let points = kill_points(total, KILL_POINTS);
    let mut killed = 0;
    for &point in &points {
        let name = format!("k{point}");
        proxy.clear_seen();
        let running = Running::start(command(&name));
        killed += usize::from(running.kill_when(|_| proxy.seen().len() >= point));
        check(&name, point);
    }
    (points, killed)
}

/// `bunker archive verify`: 0 bad entries (a kill before the archive directory or
/// its first manifest.json was made leaves nothing to verify).
fn assert_archive_verifies(home: &TestHome, archive: &Path, point: usize) {
    if !archive.exists() {
        return;
    }
    let verify = home
        .bunker()
        .args(["archive", "verify", "--archive-dir"])
        .arg(archive)
        .run();
    if verify.code == Some(1) && verify.stderr.contains("no archives under") {
        return;
    }
    verify.assert_success();
    assert!(
        verify.stdout.contains(", 0 bad"),
        "kill point {point}: {verify}"
    );
}

/// `GET` of a registry path (straight to the registry) with every manifest type
/// accepted: (status, body).
fn registry_get(registry: &str, path: &str) -> (u16, String) {
    let output = run(Command::new("curl").args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
        &format!("http://{registry}{path}"),
    ]));
    output.assert_success();
    let (body, status) = output.stdout.rsplit_once('\n').expect("status line");
    (
        status.trim().parse().expect("HTTP status"),
        body.to_string(),
    )
}

/// Every tag `repository` lists resolves to a manifest whose blobs all exist;
/// returns tag → manifest digest (sha256 of the body).
fn complete_tags(registry: &str, repository: &str) -> Vec<(String, String)> {
    let (status, body) = registry_get(registry, &format!("/v2/{repository}/tags/list"));
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "tags of {repository}: {body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("tag list JSON");
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|tag| tag.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags.into_iter()
        .map(|tag| {
            let (status, manifest) =
                registry_get(registry, &format!("/v2/{repository}/manifests/{tag}"));
            assert_eq!(
                status, 200,
                "{repository}:{tag} is listed but has no manifest"
            );
            let parsed: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
            let blobs = std::iter::once(&parsed["config"])
                .chain(parsed["layers"].as_array().into_iter().flatten());
            for blob in blobs {
                let digest = blob["digest"].as_str().expect("blob digest");
                let (status, _) =
                    registry_get(registry, &format!("/v2/{repository}/blobs/{digest}"));
                assert_eq!(
                    status, 200,
                    "{repository}:{tag} names blob {digest}, which the registry lacks"
                );
            }
            let digest: String = Sha256::digest(manifest.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            (tag, digest)
        })
        .collect()
}

/// What an archive holds, for comparing end states: manifest.json entries
/// (image, image ID, file hash) and the blob cache's file names.
fn archive_state(archive: &Path) -> (Vec<String>, Vec<String>) {
    let mut entries = Vec::new();
    for entry in walkdir::WalkDir::new(archive).into_iter().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|name| name == "manifest.json")
            && !path.starts_with(archive.join("blobs"))
        {
            let manifest: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            for image in manifest["images"].as_array().into_iter().flatten() {
                entries.push(format!(
                    "{} {} {}",
                    image["image"], image["docker_id"], image["sha256"]
                ));
            }
        }
    }
    entries.sort();
    let mut blobs: Vec<String> = cache_files(archive)
        .iter()
        .filter(|path| is_blob_name(path))
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    (entries, blobs)
}

/// The figures line of one command's kill matrix (reached only when every check held),
/// then the check that most kills landed on a running bunker (the last point can come
/// after the run's last request: that run may finish first).
fn print_kill_figures(command: &str, points: &[usize], killed: usize, total: usize, checks: &str) {
    println!(
        "FAULTS registry-kill: command={command} points={} killed_running={killed} \
         requests_per_run={total} checks={checks} rerun_equal={}/{}",
        points.len(),
        points.len(),
        points.len()
    );
    assert!(
        killed >= KILL_POINTS / 2,
        "{command}: only {killed} of the runs were still running when killed"
    );
}

#[test]
fn registry_pull_killed_at_any_point_leaves_a_verifiable_archive_and_reruns_to_the_same_end() {
    let (sandbox, home, work, name) = registry_test("kill-pull");
    let (references, _) = seed_small(&sandbox, work.path(), &name);
    let proxy = FaultProxy::start(&sandbox.registry);
    slow_blobs(&proxy);
    let pull_command = |archive: &Path| {
        home.registry_pull(archive)
            .env("BUNKER_RETRY_INITIAL_MS", "20")
            .args(["--jobs", "1"])
            .args(
                references
                    .iter()
                    .map(|reference| format!("{}/{reference}", proxy.address)),
            )
            .into_command()
    };
    let total = uninterrupted_requests(&proxy, pull_command(&work.path().join("uninterrupted")));
    let expected = archive_state(&work.path().join("uninterrupted"));
    let mut left_over = 0;
    let (points, killed) = kill_matrix(
        &proxy,
        total,
        |name| pull_command(&work.path().join(name)),
        |name, point| {
            let archive = work.path().join(name);
            assert_archive_verifies(&home, &archive, point);
            let corrupt: Vec<PathBuf> = corrupt_in_cache(&archive)
                .into_iter()
                .filter(|path| is_blob_name(path))
                .collect();
            assert_eq!(
                corrupt,
                Vec::<PathBuf>::new(),
                "kill point {point}: a blob is visible under its digest with other content"
            );
            common::run(&mut pull_command(&archive)).assert_success();
            left_over += leftovers(&archive);
            assert_archive_verifies(&home, &archive, point);
            assert_eq!(archive_state(&archive), expected, "kill point {point}");
        },
    );
    print_kill_figures(
        "pull",
        &points,
        killed,
        total,
        &format!("verify_bad=0,corrupt_in_cache=0,temp_files_left_after_rerun={left_over}"),
    );
}

#[test]
fn registry_push_killed_at_any_point_leaves_no_half_pushed_tag_and_reruns_to_the_same_end() {
    let (sandbox, home, work, name) = registry_test("kill-push");
    let (_, tars) = seed_small(&sandbox, work.path(), &name);
    let proxy = FaultProxy::start(&sandbox.registry);
    let prefix = unique_name("killpush");
    let push_command = |name: &str| {
        let to = format!("{}/{prefix}-{name}", proxy.address);
        push_all(
            &home,
            &to,
            &tars,
            &work.path().join(format!("archive-{name}")),
        )
        .into_command()
    };
    let repository = |name: &str| format!("{prefix}-{name}/{}", source_repository(&tars[0]));
    let total = uninterrupted_requests(&proxy, push_command("uninterrupted"));
    let expected = complete_tags(&sandbox.registry, &repository("uninterrupted"));
    assert_eq!(expected.len(), 3, "both tags pushed: {expected:?}");
    let (points, killed) = kill_matrix(&proxy, total, push_command, |name, point| {
        complete_tags(&sandbox.registry, &repository(name));
        common::run(&mut push_command(name)).assert_success();
        assert_eq!(
            complete_tags(&sandbox.registry, &repository(name)),
            expected,
            "kill point {point}"
        );
    });
    print_kill_figures("push", &points, killed, total, "half_pushed=0");
}

#[test]
fn sync_killed_at_any_point_leaves_no_half_pushed_tag_and_reruns_to_the_same_end() {
    let (sandbox, home, work, name) = registry_test("kill-sync");
    let (references, _) = seed_small(&sandbox, work.path(), &name);
    let source = references[0].split(':').next().unwrap().to_string();
    let proxy = FaultProxy::start(&sandbox.registry);
    slow_blobs(&proxy);
    let prefix = unique_name("killsync");
    let sync_command = |name: &str| {
        let config = write_file(
            work.path(),
            &format!("sync-{name}.yaml"),
            &format!(
                "repositories:\n  - source: {proxy}/{source}\n    destination: {proxy}/{prefix}-{name}\n    tags: ['1', '2', '3']\n",
                proxy = proxy.address
            ),
        );
        sync(&home, &config, &work.path().join(format!("archive-{name}"))).into_command()
    };
    let total = uninterrupted_requests(&proxy, sync_command("uninterrupted"));
    let expected = complete_tags(&sandbox.registry, &format!("{prefix}-uninterrupted"));
    assert_eq!(expected.len(), 3, "both tags synced: {expected:?}");
    let (points, killed) = kill_matrix(&proxy, total, sync_command, |name, point| {
        complete_tags(&sandbox.registry, &format!("{prefix}-{name}"));
        common::run(&mut sync_command(name)).assert_success();
        assert_eq!(
            complete_tags(&sandbox.registry, &format!("{prefix}-{name}")),
            expected,
            "kill point {point}"
        );
    });
    print_kill_figures("sync", &points, killed, total, "half_pushed=0");
}

#[test]
fn registry_push_survives_429_and_503_on_its_requests() {
    let (sandbox, home, work, name) = registry_test("fault-push");
    let (_, tars) = seed_small(&sandbox, work.path(), &name);
    let proxy = FaultProxy::start(&sandbox.registry);
    proxy.add_rule(FaultRule::new(
        "HEAD",
        "/blobs/",
        FaultAction::too_many_requests(1),
        1,
    ));
    proxy.add_rule(FaultRule::new(
        "POST",
        "/blobs/uploads/",
        FaultAction::unavailable(),
        2,
    ));
    proxy.add_rule(FaultRule::new(
        "PUT",
        "/manifests/",
        FaultAction::unavailable(),
        1,
    ));
    let to = format!("{}/{}", proxy.address, unique_name("faultpush"));
    push_all(&home, &to, &tars, &work.path().join("archive"))
        .run()
        .assert_success();
    let seen = proxy.seen();
    let statuses = |method: &str, needle: &str| -> Vec<u16> {
        seen.iter()
            .filter(|seen| seen.method == method && seen.path.contains(needle))
            .map(|seen| seen.status)
            .collect()
    };
    assert_eq!(&statuses("POST", "/blobs/uploads/")[..3], &[503, 503, 202]);
    assert_eq!(&statuses("PUT", "/manifests/")[..2], &[503, 201]);
    assert_eq!(statuses("HEAD", "/blobs/")[0], 429);
    let repository = to.split_once('/').unwrap().1;
    let pushed = complete_tags(
        &sandbox.registry,
        &format!("{repository}/{}", source_repository(&tars[0])),
    );
    assert_eq!(pushed.len(), 3, "every tag pushed whole: {pushed:?}");
    println!(
        "FAULTS registry: fault=push-429-503 injected={} fetched/unique=n/a corrupt_in_cache=0",
        proxy.faults_injected()
    );
}

#[test]
fn sync_survives_a_503_manifest_a_cut_blob_and_a_flipped_byte() {
    let (sandbox, home, work, name) = registry_test("fault-sync");
    let seeded = seed(&sandbox, work.path(), &name);
    let (source, tag) = seeded.repository_and_tag.split_once(':').unwrap();
    let proxy = FaultProxy::start(&sandbox.registry);
    proxy.add_rule(FaultRule::new(
        "GET",
        "/manifests/",
        FaultAction::unavailable(),
        1,
    ));
    let cut = seeded.big_size as usize * 2 / 5;
    on_big_blob(&proxy, &seeded, FaultAction::CutAfter(cut), 1);
    on_big_blob(&proxy, &seeded, FaultAction::Corrupt, 1);
    let destination = unique_name("faultsync");
    let config = write_file(
        work.path(),
        "sync.yaml",
        &format!(
            "repositories:\n  - source: {proxy}/{source}\n    destination: {proxy}/{destination}\n    tags: ['{tag}']\n",
            proxy = proxy.address
        ),
    );
    let archive = work.path().join("archive");
    sync(&home, &config, &archive)
        .run()
        .assert_success()
        .assert_stdout_contains("1 copied");
    let synced = complete_tags(&sandbox.registry, &destination);
    assert_eq!(synced.len(), 1, "{synced:?}");
    figures("sync-503-cut-flip", &proxy, &seeded, &archive);
}
