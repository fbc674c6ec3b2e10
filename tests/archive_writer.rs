//! The archive writer on locally built `docker save` tars: every compression,
//! both tar layouts, long names, and every way an export can go wrong.

mod archive_support;

use std::path::Path;

use archive_support::*;
use bunker::archive::{
    Compression, ExpectedImage, WrittenArchive, remove_stale_partials, write_archive,
};

/// The image most tests archive.
const TOOL: &str = "example/tool:1.0";

fn assert_no_partials(dir: &Path) {
    let leftovers: Vec<String> = files_below(dir)
        .into_iter()
        .filter(|file| file.contains(".partial-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

/// Panics unless a refused write left neither `destination` nor a partial file in `dir`.
#[track_caller]
fn assert_nothing_written(dir: &Path, destination: &Path) {
    assert!(
        !destination.exists(),
        "{} was written",
        destination.display()
    );
    assert_no_partials(dir);
}

/// Writes `bytes` through the archive writer to `destination` with `compression`,
/// expecting the image [`TOOL`].
fn write_tool(
    bytes: &[u8],
    destination: &Path,
    compression: Compression,
) -> anyhow::Result<WrittenArchive> {
    write(bytes, destination, &options(compression, TOOL))
}

/// The error (with its causes) of a write that must fail.
#[track_caller]
fn refusal(written: anyhow::Result<WrittenArchive>) -> String {
    format!("{:#}", written.unwrap_err())
}

#[test]
fn gzip_archive_is_standard_gzip_with_the_recorded_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let tar = simple_tar(TOOL, 1);
    let destination = dir.path().join("x86_64/tools/example_tool_1.0.tar.gz");
    let written = write_tool(&tar.bytes, &destination, Compression::Gzip).unwrap();

    assert_eq!(written.path, destination);
    assert_eq!(written.compression, Compression::Gzip);
    assert_eq!(written.size, std::fs::metadata(&destination).unwrap().len());
    assert_eq!(written.sha256, sha256_of_file(&destination));
    assert_eq!(written.uncompressed_size, tar.bytes.len() as u64);
    assert_eq!(written.uncompressed_sha256, sha256_hex(&tar.bytes));
    let quoted = destination.display();
    shell(&format!("gzip -t '{quoted}'"));
    let gunzipped = shell(&format!("gunzip -c '{quoted}' | sha256sum"));
    assert_eq!(
        gunzipped.split_whitespace().next().unwrap(),
        written.uncompressed_sha256
    );

    assert_eq!(written.image.repo_tags, vec![TOOL.to_string()]);
    assert_eq!(written.image.config_digest, tar.config_digest);
    assert_eq!(written.image.diff_ids, tar.diff_ids);
    assert_eq!(written.image.layer_files, tar.layer_files);
    assert_eq!(written.image.platform.as_deref(), Some("linux/amd64"));
    assert_no_partials(dir.path());
}

/// The gzip members of a file, each as (header bytes, decompressed length).
fn gzip_members(path: &Path) -> Vec<(Vec<u8>, usize)> {
    let bytes = std::fs::read(path).unwrap();
    let mut rest: &[u8] = &bytes;
    let mut members = Vec::new();
    while !rest.is_empty() {
        let header = rest[..rest.len().min(20)].to_vec();
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let length = std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
        rest = decoder.into_inner();
        members.push((header, length as usize));
    }
    members
}

#[test]
fn gzip_is_written_as_independent_one_mib_members_that_gunzip_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![layer(&[("big", payload(3 << 20, 7))])];
    let tar = docker_save_tar(&TarSpec::new("example/big:1", layers));
    let destination = dir.path().join("big.tar.gz");
    let written = write(
        &tar.bytes,
        &destination,
        &options(Compression::Gzip, "example/big:1"),
    )
    .unwrap();

    // gzp's Mgzip: every member carries the `IG` extra field with its size, and
    // holds one 1 MiB block of the tar (the last one the rest).
    let members = gzip_members(&destination);
    assert_eq!(
        members.len(),
        tar.bytes.len().div_ceil(1 << 20),
        "{members:?}"
    );
    for (index, (header, length)) in members.iter().enumerate() {
        assert_eq!(header[3] & 4, 4, "member {index} has no extra field");
        assert_eq!(&header[12..14], b"IG", "member {index}");
        if index + 1 < members.len() {
            assert_eq!(*length, 1 << 20, "member {index}");
        }
    }
    let quoted = destination.display();
    shell(&format!("gzip -t '{quoted}'"));
    let sum = shell(&format!("gunzip -c '{quoted}' | sha256sum"));
    assert_eq!(
        sum.split_whitespace().next().unwrap(),
        written.uncompressed_sha256
    );
    let python = shell(&format!(
        "python3 -c 'import gzip,hashlib,sys; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())' '{quoted}'"
    ));
    assert_eq!(python.trim(), written.uncompressed_sha256);
    // --level still applies: on text, level 1 writes a larger file than level 9.
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|line| format!("{line}: request {} served\n", line % 977).into_bytes())
        .collect();
    let text_tar = docker_save_tar(&TarSpec::new(
        "example/text:1",
        vec![layer(&[("log", text)])],
    ));
    let fast = dir.path().join("fast.tar.gz");
    let small = dir.path().join("small.tar.gz");
    let mut level = options(Compression::Gzip, "example/text:1");
    level.level = Some(1);
    let fast_size = write(&text_tar.bytes, &fast, &level).unwrap().size;
    level.level = Some(9);
    let small_size = write(&text_tar.bytes, &small, &level).unwrap().size;
    assert!(
        fast_size > small_size,
        "level 1: {fast_size}, level 9: {small_size}"
    );
}

#[test]
fn every_compression_round_trips_both_layouts() {
    for style in [Style::Classic, Style::Oci] {
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let dir = tempfile::tempdir().unwrap();
            let layers = vec![
                layer(&[("a", payload(70_000, 3))]),
                layer(&[("b", payload(5, 4))]),
                layer(&[("c/d", payload(200_000, 5))]),
            ];
            let mut spec = TarSpec::new("registry.local:5000/group/app:2", layers);
            spec.style = style;
            spec.architecture = "arm64";
            let tar = docker_save_tar(&spec);
            let destination = dir
                .path()
                .join(format!("app/out{}", compression.extension()));
            let written = write(
                &tar.bytes,
                &destination,
                &options(compression, "registry.local:5000/group/app:2"),
            )
            .unwrap_or_else(|error| panic!("{style:?} {compression}: {error:#}"));
            let quoted = destination.display();
            let decompress = match compression {
                Compression::Gzip => format!("gzip -t '{quoted}' && gunzip -c '{quoted}'"),
                Compression::Zstd => format!("zstd -q -t '{quoted}' && zstd -q -d -c '{quoted}'"),
                Compression::None => format!("cat '{quoted}'"),
            };
            let sum = shell(&format!("{decompress} | sha256sum"));
            assert_eq!(
                sum.split_whitespace().next().unwrap(),
                sha256_hex(&tar.bytes)
            );
            assert_eq!(written.sha256, sha256_of_file(&destination));
            assert_eq!(
                written.image.diff_ids, tar.diff_ids,
                "{style:?} {compression}"
            );
            assert_eq!(written.image.layer_files, tar.layer_files);
            assert_eq!(written.image.platform.as_deref(), Some("linux/arm64"));
            if style == Style::Oci {
                assert_eq!(written.image.manifest_digests.len(), 1);
            }
            assert_no_partials(dir.path());
        }
    }
}

#[test]
fn long_member_names_of_every_kind_are_understood() {
    for long_names in [LongNames::Gnu, LongNames::Pax, LongNames::UstarPrefix] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = TarSpec::new("busybox:latest", vec![layer(&[("x", payload(10, 1))])]);
        spec.long_names = long_names;
        let tar = docker_save_tar(&spec);
        let written = write(
            &tar.bytes,
            &dir.path().join("p/busybox_latest.tar.gz"),
            &options(Compression::Gzip, "docker.io/library/busybox"),
        )
        .unwrap_or_else(|error| panic!("{long_names:?}: {error:#}"));
        assert_eq!(
            written.image.config_digest, tar.config_digest,
            "{long_names:?}"
        );
    }
}

#[test]
fn a_failing_export_leaves_neither_file_nor_partial() {
    let dir = tempfile::tempdir().unwrap();
    let tar = simple_tar(TOOL, 2);
    let destination = dir.path().join("tools/example_tool_1.0.tar.gz");
    let mut items = chunks(&tar.bytes, 50_000);
    items.truncate(4);
    items.push(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "ssh channel closed",
    )));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(write_archive(
            futures_util::stream::iter(items),
            &destination,
            &options(Compression::Gzip, TOOL),
            |_| {},
        ))
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("cannot archive example/tool:1.0"),
        "{message}"
    );
    assert!(
        message.contains(&destination.display().to_string()),
        "{message}"
    );
    assert!(message.contains("ssh channel closed"), "{message}");
    assert_nothing_written(dir.path(), &destination);
}

#[test]
fn a_cut_export_is_refused_as_truncated() {
    for cut_at in [512 * 3 + 100, 512 * 7] {
        let dir = tempfile::tempdir().unwrap();
        let tar = simple_tar(TOOL, 3);
        let destination = dir.path().join("tools/example_tool_1.0.tar.gz");
        let message = refusal(write_tool(
            &tar.bytes[..cut_at],
            &destination,
            Compression::Gzip,
        ));
        assert!(message.contains("truncated export"), "{message}");
        assert_nothing_written(dir.path(), &destination);
    }
}

#[test]
fn a_tar_without_manifest_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TarSpec::new(TOOL, vec![layer(&[("a", payload(100, 1))])]);
    spec.without_manifest = true;
    let tar = docker_save_tar(&spec);
    let destination = dir.path().join("tools/example_tool_1.0.tar.zst");
    let message = refusal(write_tool(&tar.bytes, &destination, Compression::Zstd));
    assert!(
        message.contains("the tar has no manifest.json: it is not a `docker save` stream"),
        "{message}"
    );
    assert!(message.contains(TOOL), "{message}");
    assert_nothing_written(dir.path(), &destination);
}

#[test]
fn garbage_instead_of_a_tar_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("tools/x.tar.gz");
    let message = refusal(write_tool(
        b"Error response from daemon: reference does not exist\n",
        &destination,
        Compression::Gzip,
    ));
    assert!(
        message.contains(
            "not a tar stream: the header at byte 0 is corrupt \
             (it starts with \"Error response from daemon: reference does not exist\")"
        ),
        "{message}"
    );
    let message = refusal(write_tool(b"", &destination, Compression::Gzip));
    assert!(message.contains("end-of-archive marker"), "{message}");
    assert_nothing_written(dir.path(), &destination);
}

#[test]
fn a_tar_of_another_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar = simple_tar("example/other:2.0", 4);
    let destination = dir.path().join("tools/example_tool_1.0.tar.gz");
    let message = refusal(write_tool(&tar.bytes, &destination, Compression::Gzip));
    assert!(
        message.contains(
            "the tar holds [\"example/other:2.0\"], not the expected image example/tool:1.0"
        ),
        "{message}"
    );
    let mut by_id = options(Compression::Gzip, "example/other:2.0");
    by_id.expected = ExpectedImage {
        reference: Some("example/other:2.0".into()),
        image_id: Some(format!("sha256:{}", "0".repeat(64))),
    };
    let message = refusal(write(&tar.bytes, &destination, &by_id));
    assert!(message.contains("not the expected image ID"), "{message}");
    by_id.expected.image_id = Some(tar.config_digest.clone());
    write(&tar.bytes, &destination, &by_id).unwrap();
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar = simple_tar(TOOL, 5);
    let mut bytes = tar.bytes.clone();
    // Flip a byte inside the first layer's payload (well past its headers).
    let position = bytes
        .windows(8)
        .position(|window| window == b"bin/tool")
        .unwrap()
        + 4096;
    bytes[position] ^= 0x55;
    let destination = dir.path().join("tools/example_tool_1.0.tar.gz");
    let message = refusal(write_tool(&bytes, &destination, Compression::Gzip));
    assert!(message.contains("but the config's diff ID is"), "{message}");
    assert!(!destination.exists());
}

#[test]
fn a_failed_rewrite_keeps_the_old_archive_and_a_good_one_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("tools/example_tool_1.0.tar.gz");
    let first = simple_tar(TOOL, 6);
    let written = write_tool(&first.bytes, &destination, Compression::Gzip).unwrap();
    let cut = &first.bytes[..first.bytes.len() / 2];
    refusal(write_tool(cut, &destination, Compression::Gzip));
    assert_eq!(sha256_of_file(&destination), written.sha256);
    let second = simple_tar(TOOL, 7);
    let rewritten = write_tool(&second.bytes, &destination, Compression::Gzip).unwrap();
    assert_ne!(rewritten.sha256, written.sha256);
    assert_eq!(sha256_of_file(&destination), rewritten.sha256);
    assert_no_partials(dir.path());
}

#[test]
fn levels_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar = simple_tar(TOOL, 8);
    let mut bad = options(Compression::Gzip, TOOL);
    bad.level = Some(12);
    let message = refusal(write(&tar.bytes, &dir.path().join("a.tar.gz"), &bad));
    assert!(
        message.contains("gzip level 12 is out of range: use 0 to 9"),
        "{message}"
    );
    let mut fast = options(Compression::Zstd, TOOL);
    fast.level = Some(1);
    fast.threads = 1;
    write(&tar.bytes, &dir.path().join("a.tar.zst"), &fast).unwrap();
}

#[test]
fn progress_reports_the_tar_bytes_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let tar = simple_tar(TOOL, 9);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut seen = Vec::new();
    runtime
        .block_on(write_archive(
            futures_util::stream::iter(chunks(&tar.bytes, 10_000)),
            &dir.path().join("a.tar"),
            &options(Compression::None, TOOL),
            |bytes| seen.push(bytes),
        ))
        .unwrap();
    assert_eq!(seen.last().copied(), Some(tar.bytes.len() as u64));
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn stale_partials_of_dead_runs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tools")).unwrap();
    let dead = dir
        .path()
        .join(format!("tools/a.tar.gz.partial-{}", i32::MAX - 5));
    let alive = dir
        .path()
        .join(format!("tools/b.tar.gz.partial-{}", std::process::id()));
    std::fs::write(&dead, b"half").unwrap();
    std::fs::write(&alive, b"half").unwrap();
    assert_eq!(
        remove_stale_partials(dir.path()).unwrap(),
        vec![dead.clone()]
    );
    assert!(!dead.exists());
    assert!(alive.exists());
}

#[test]
fn the_inspector_does_not_care_where_chunks_end() {
    let mut spec = TarSpec::new(TOOL, vec![layer(&[("a", payload(5000, 1))]), layer(&[])]);
    spec.style = Style::Oci;
    spec.long_names = LongNames::Pax;
    let tar = docker_save_tar(&spec);
    for chunk in [1, 7, 511, 512, 513, 4096, tar.bytes.len()] {
        let mut inspector = bunker::archive::docker_tar::DockerTarInspector::new();
        for piece in tar.bytes.chunks(chunk) {
            inspector.feed(piece).unwrap();
        }
        let info = inspector
            .finish(&ExpectedImage::reference(TOOL))
            .unwrap_or_else(|error| panic!("chunks of {chunk}: {error}"));
        assert_eq!(info.diff_ids, tar.diff_ids);
    }
}
