//! What `image-restore` sends to the engine over SSH (`--wire-compression`): each
//! mode restores the recorded ID, a zstd archive reaches an engine that cannot read
//! zstd as gzip, a damaged file sent as stored is cut off before the engine sees
//! its end, and the multi-member gzip the writer makes loads with plain `docker load`.

mod common;
mod restore_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bunker::archive::{ArchDir, Compression, Manifest, ManifestEntry};
use bunker::engine::{self, EngineSettings, target};
use bunker::restore::load::{CheckOrder, LoadFailure, load_verified};
use bunker::restore::send::HELD_BACK_BYTES;
use bunker::restore::wire::WireEncoding;
use common::*;
use restore_support::*;
use tokio_util::sync::CancellationToken;

fn entry_of(arch_dir: &ArchDir, project: &str, image: &str) -> ManifestEntry {
    Manifest::load(&arch_dir.manifest_path())
        .unwrap()
        .find(project, image)
        .unwrap()
        .clone()
}

/// `image-restore --json <extra>` over SSH: its output and its report.
fn restore_json(
    home: &TestHome,
    sandbox: &Sandbox,
    arch_dir: &Path,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let output = restore_command(home, sandbox, arch_dir)
        .arg("--json")
        .args(extra)
        .run();
    let report = json_report(&output);
    (output, report)
}

/// Whether the sandbox engine loads zstd-compressed layers (Docker 23.0 and later).
fn engine_reads_zstd(sandbox: &Sandbox) -> bool {
    let version = docker_ok(sandbox, ["version", "--format", "{{.Server.Version}}"]);
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("engine version {version:?} is not a number"));
    major >= 23
}

/// Two fresh images of project `proj` archived from the sandbox engine, one gzip and one
/// zstd, with their manifest entries.
struct GzipAndZstd {
    gzip_image: String,
    zstd_image: String,
    /// Image IDs: the gzip one's, then the zstd one's.
    ids: [String; 2],
    arch_dir: ArchDir,
    gzip_entry: ManifestEntry,
    zstd_entry: ManifestEntry,
    _base: tempfile::TempDir,
}

impl GzipAndZstd {
    /// Builds both images with `build(sandbox, tag)` (which returns the image ID), named
    /// after `prefix`, and archives them.
    fn new(sandbox: &Sandbox, prefix: &str, build: impl Fn(&Sandbox, &str) -> String) -> Self {
        let unique = unique_name(prefix);
        let gzip_image = format!("bunker-test/{unique}-gz:1");
        let zstd_image = format!("bunker-test/{unique}-zst:1");
        let ids = [build(sandbox, &gzip_image), build(sandbox, &zstd_image)];
        let base = tempfile::tempdir().unwrap();
        let arch_dir = archive_from_sandbox(
            sandbox,
            base.path(),
            &[gz("proj", &gzip_image), zst("proj", &zstd_image)],
        );
        GzipAndZstd {
            gzip_entry: entry_of(&arch_dir, "proj", &gzip_image),
            zstd_entry: entry_of(&arch_dir, "proj", &zstd_image),
            gzip_image,
            zstd_image,
            ids,
            arch_dir,
            _base: base,
        }
    }

    /// Both image names: the gzip one, then the zstd one.
    fn images(&self) -> [&str; 2] {
        [&self.gzip_image, &self.zstd_image]
    }
}

#[test]
fn each_wire_mode_restores_the_recorded_id_over_ssh() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let archived = GzipAndZstd::new(&sandbox, "wire", build_unique_image);
    let zstd_auto = if engine_reads_zstd(&sandbox) {
        "zstd (as stored)"
    } else {
        "gzip level 1 (zstd decompressed here)"
    };

    // (mode, what the gzip file travels as, what the zstd file travels as)
    let modes = [
        ("auto", "gzip (as stored)", zstd_auto),
        (
            "none",
            "none (decompressed here)",
            "none (decompressed here)",
        ),
        (
            "gzip",
            "gzip (as stored)",
            "gzip level 1 (zstd decompressed here)",
        ),
    ];
    for (mode, gzip_wire, zstd_wire) in modes {
        remove_images(&sandbox, &archived.images());
        let (output, report) = restore_json(
            &home,
            &sandbox,
            archived.arch_dir.path(),
            &["--wire-compression", mode],
        );
        output.assert_success();
        for (image, id, wire) in [
            (&archived.gzip_image, &archived.ids[0], gzip_wire),
            (&archived.zstd_image, &archived.ids[1], zstd_wire),
        ] {
            let row = report_row(&report, image);
            assert_eq!(
                row["outcome"], "loaded",
                "--wire-compression {mode}: {row:#}"
            );
            assert_eq!(row["wire"], wire, "--wire-compression {mode}: {row:#}");
            assert_eq!(
                image_id(&sandbox, image).as_deref(),
                Some(id.as_str()),
                "--wire-compression {mode}: {image}"
            );
        }
        // Bytes on the wire: the file itself when stored, the tar when decompressed.
        let gzip_sent = report_row(&report, &archived.gzip_image)["bytes_sent"]
            .as_u64()
            .unwrap();
        let zstd_sent = report_row(&report, &archived.zstd_image)["bytes_sent"]
            .as_u64()
            .unwrap();
        match mode {
            "none" => {
                assert_eq!(Some(gzip_sent), archived.gzip_entry.uncompressed_size);
                assert_eq!(Some(zstd_sent), archived.zstd_entry.uncompressed_size);
            }
            _ => {
                assert_eq!(
                    gzip_sent, archived.gzip_entry.size,
                    "--wire-compression {mode}"
                );
                assert!(
                    zstd_sent < archived.zstd_entry.uncompressed_size.unwrap(),
                    "--wire-compression {mode}: {zstd_sent} bytes sent for a zstd archive of a \
                     {:?}-byte tar",
                    archived.zstd_entry.uncompressed_size
                );
            }
        }
    }

    // The summary line and the table say what went over the wire.
    remove_images(&sandbox, &[archived.gzip_image.as_str()]);
    let output = restore(&home, &sandbox, archived.arch_dir.path(), &[]);
    output.assert_success();
    output.assert_stdout_contains("gzip (as stored)");
    output.assert_stdout_contains("sent to the engine");

    docker_ok(
        &sandbox,
        ["rmi", &archived.gzip_image, &archived.zstd_image],
    );
}

#[test]
fn zstd_on_the_wire_needs_an_engine_that_reads_it() {
    let sandbox = sandbox();
    if engine_reads_zstd(&sandbox) {
        // This engine reads zstd: the mode is covered by the test above's expectations.
        return;
    }
    let home = TestHome::new(&sandbox);
    let unique = unique_name("wirezstd");
    let image = format!("bunker-test/{unique}:1");
    let id = build_unique_image(&sandbox, &image);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &[gz("proj", &image)]);
    remove_images(&sandbox, &[image.as_str()]);

    let since = now_seconds();
    let output = restore(
        &home,
        &sandbox,
        arch_dir.path(),
        &["--wire-compression", "zstd"],
    );
    output.assert_code(1);
    output.assert_stderr_contains("--wire-compression zstd");
    output.assert_stderr_contains("cannot load zstd (Docker 23.0 and later can)");
    output.assert_stderr_contains("use --wire-compression gzip or auto");
    assert_eq!(image_id(&sandbox, &image), None);
    assert_eq!(load_events(&sandbox, since, &[id]), Vec::<String>::new());
}

/// Connects to the sandbox engine over SSH through the library, with `home`'s keys.
async fn connect_over_ssh(home: &TestHome, sandbox: &Sandbox) -> engine::Engine {
    let target = target::resolve(&target::TargetInputs {
        host_flag: Some(sandbox.ssh_url()),
        docker_config_dir: home.path().join(".docker"),
        ..Default::default()
    })
    .unwrap();
    let settings = EngineSettings {
        remote_socket: Some(sandbox.remote_socket.clone()),
        ..Default::default()
    };
    engine::connect_to(&target, &settings, home.path())
        .await
        .unwrap()
}

/// Copies `path` with one byte flipped at `offset(len)`, or cut to `offset(len)` bytes.
fn damaged_copy(path: &Path, name: &str, damage: Damage) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    match damage {
        Damage::Flip(at) => {
            let offset = at(bytes.len());
            bytes[offset] ^= 0x55;
        }
        Damage::Cut(at) => bytes.truncate(at(bytes.len())),
    }
    let copy = path.with_file_name(name);
    std::fs::write(&copy, bytes).unwrap();
    copy
}

#[derive(Clone, Copy)]
enum Damage {
    Flip(fn(usize) -> usize),
    Cut(fn(usize) -> usize),
}

#[test]
fn a_damaged_archive_sent_compressed_is_cut_off_before_the_engine_loads_it() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    // Incompressible 3 MiB layers: the files are larger than the held-back tail, so
    // the engine receives most of each damaged file before the check fails.
    let archived = GzipAndZstd::new(&sandbox, "wirecut", |sandbox, tag| {
        build_random_image(sandbox, tag, 3 << 20)
    });
    remove_images(&sandbox, &archived.images());
    let engine_reads_zstd = engine_reads_zstd(&sandbox);
    let damages = [
        ("middle", Damage::Flip(|len| len / 2)),
        ("end", Damage::Flip(|len| len - 16)),
        ("cut", Damage::Cut(|len| len - 100)),
    ];

    let since = now_seconds();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = connect_over_ssh(&home, &sandbox).await;
        // (entry, how it is sent)
        let mut cases = vec![
            (
                &archived.gzip_entry,
                WireEncoding::Stored(Compression::Gzip),
            ),
            (
                &archived.zstd_entry,
                WireEncoding::Recompressed {
                    from: Compression::Zstd,
                    to: Compression::Gzip,
                },
            ),
        ];
        if engine_reads_zstd {
            cases.push((
                &archived.zstd_entry,
                WireEncoding::Stored(Compression::Zstd),
            ));
        }
        for (entry, encoding) in cases {
            for (name, damage) in damages {
                let original = archived.arch_dir.resolve(&entry.file);
                let damaged = damaged_copy(&original, &format!("damaged-{name}"), damage);
                let sent = Arc::new(AtomicU64::new(0));
                let counter = sent.clone();
                // The stream check alone: the whole-file check before a local load
                // would refuse the file before a byte is sent.
                let failure = load_verified(
                    &engine.docker,
                    &damaged,
                    entry,
                    CheckOrder::StreamHoldingTail,
                    encoding,
                    |_| {},
                    move |bytes| {
                        counter.fetch_add(bytes, Ordering::Relaxed);
                    },
                    &CancellationToken::new(),
                )
                .await
                .expect_err("a damaged archive loaded");
                let case = format!("{encoding} with damage {name}");
                match &failure {
                    LoadFailure::Corrupt(message) => {
                        assert!(
                            message.contains(&damaged.display().to_string()),
                            "{case}: {message}"
                        );
                        assert!(message.contains("is corrupt"), "{case}: {message}");
                    }
                    // A damaged byte the engine receives may make it give up first; it
                    // loaded nothing either way (checked below).
                    LoadFailure::Engine(_) if name == "middle" => {}
                    other => panic!("{case}: not reported corrupt: {other:?}"),
                }
                let sent = sent.load(Ordering::Relaxed);
                if let (WireEncoding::Stored(_), LoadFailure::Corrupt(_)) = (encoding, &failure) {
                    // Most of the file went out; its last MiB never did.
                    let size = std::fs::metadata(&damaged).unwrap().len();
                    assert!(sent > 0, "{case}: nothing was sent");
                    assert!(
                        sent + HELD_BACK_BYTES as u64 <= size,
                        "{case}: {sent} of {size} bytes were sent"
                    );
                }
                std::fs::remove_file(&damaged).unwrap();
            }
        }
    });
    assert_eq!(image_id(&sandbox, &archived.gzip_image), None);
    assert_eq!(image_id(&sandbox, &archived.zstd_image), None);
    for id in &archived.ids {
        assert_eq!(image_id(&sandbox, id), None, "{id} was created");
    }
    assert_eq!(
        load_events(&sandbox, since, &archived.ids),
        Vec::<String>::new(),
        "the engine loaded an image from a damaged archive"
    );
}

/// Members of a gzip file: each starts with the gzip magic after the previous one ended.
fn gzip_members(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let mut rest: &[u8] = &bytes;
    let mut members = 0;
    while !rest.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
        rest = decoder.into_inner();
        members += 1;
    }
    members
}

#[test]
fn the_multi_member_gzip_archive_passes_gzip_t_and_plain_docker_load() {
    let sandbox = sandbox();
    let unique = unique_name("mgzip");
    let image = format!("bunker-test/{unique}:1");
    let id = build_random_image(&sandbox, &image, 3 << 20);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &[gz("proj", &image)]);
    let file = arch_dir.resolve(&entry_of(&arch_dir, "proj", &image).file);
    assert!(
        gzip_members(&file) >= 3,
        "{} is not multi-member",
        file.display()
    );
    let quoted = file.display();
    let checked = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("gzip -t '{quoted}' && gunzip -c '{quoted}' | tar -t"),
        ])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "gzip -t / gunzip | tar -t failed: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("manifest.json"));

    remove_images(&sandbox, &[image.as_str()]);
    let loaded = docker_ok(&sandbox, ["load", "-i", &file.display().to_string()]);
    assert!(loaded.contains(&image), "{loaded}");
    assert_eq!(image_id(&sandbox, &image).as_deref(), Some(id.as_str()));
    docker_ok(&sandbox, ["rmi", &image]);
}

#[test]
fn a_single_member_gzip_from_the_old_scripts_restores_as_stored() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let unique = unique_name("onegz");
    let image = format!("bunker-test/{unique}:1");
    let id = build_unique_image(&sandbox, &image);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &[plain("proj", &image)]);
    // What `docker save | gzip` wrote: one gzip member.
    let mut manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    let mut entry = manifest.find("proj", &image).unwrap().clone();
    let tar = arch_dir.resolve(&entry.file);
    let gzipped = PathBuf::from(format!("{}.gz", tar.display()));
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("gzip -6 -c '{}' > '{}'", tar.display(), gzipped.display()),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(&tar).unwrap();
    assert_eq!(gzip_members(&gzipped), 1);
    let mut bytes = Vec::new();
    std::fs::File::open(&gzipped)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    entry.file = format!("{}.gz", entry.file);
    entry.size = bytes.len() as u64;
    entry.sha256 = sha256_hex(&bytes);
    entry.compression = Compression::Gzip;
    manifest.upsert(entry);
    manifest.save_atomic(&arch_dir.manifest_path()).unwrap();
    remove_images(&sandbox, &[image.as_str()]);

    let (output, report) = restore_json(&home, &sandbox, arch_dir.path(), &[]);
    output.assert_success();
    let row = report_row(&report, &image);
    assert_eq!(row["outcome"], "loaded", "{row:#}");
    assert_eq!(row["wire"], "gzip (as stored)", "{row:#}");
    assert_eq!(row["bytes_sent"], bytes.len() as u64, "{row:#}");
    assert_eq!(image_id(&sandbox, &image).as_deref(), Some(id.as_str()));
    docker_ok(&sandbox, ["rmi", &image]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
