//! Dockerfile `FROM` analysis through the public API: multi-stage builds, `ARG`
//! before `FROM`, `--platform`, heredocs, line continuations, lower-case
//! instructions, parser directives, stage references and `COPY --from`.

use bunker::catalog::dockerfile::{BaseImage, base_images};
use indexmap::IndexMap;

fn analyse(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Vec<BaseImage> {
    let args: IndexMap<String, String> = args
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    base_images(text, &args, target).unwrap_or_else(|error| panic!("{error:?}\n{text}"))
}

fn names(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Vec<String> {
    analyse(text, args, target)
        .into_iter()
        .map(|image| image.image)
        .collect()
}

#[test]
fn multi_stage_with_stage_references_scratch_and_copy_from() {
    let text = "\
FROM golang:1.23 AS build
FROM BUILD AS test
FROM scratch AS export
COPY --from=build /out /out
COPY --from=1 /report /report
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=export / /
COPY --from=busybox:1.36.1-musl /bin/busybox /bin/busybox
";
    assert_eq!(
        names(text, &[], None),
        [
            "golang:1.23",
            "gcr.io/distroless/static-debian12:nonroot",
            "busybox:1.36.1-musl"
        ]
    );
}

#[test]
fn a_later_stage_name_is_an_image_not_a_stage() {
    let text = "FROM app AS base\nFROM alpine:3 AS app\n";
    let error = base_images(text, &IndexMap::new(), None);
    assert_eq!(names(text, &[], None), ["app", "alpine:3"], "{error:?}");
}

#[test]
fn args_before_from_defaults_build_args_and_chains() {
    let text = "\
ARG REGISTRY=docker.io
ARG DISTRO=debian
ARG VERSION=12
ARG IMAGE=${REGISTRY}/library/${DISTRO}:${VERSION}-slim
FROM ${IMAGE}
ARG VERSION=99
FROM $DISTRO:${VERSION:-unused}
";
    assert_eq!(
        names(text, &[], None),
        ["docker.io/library/debian:12-slim", "debian:12"]
    );
    assert_eq!(
        names(
            text,
            &[("VERSION", "13"), ("REGISTRY", "mirror.example.com")],
            None
        ),
        ["mirror.example.com/library/debian:13-slim", "debian:13"]
    );
    let found = analyse(text, &[], None);
    assert_eq!(found[0].args_used, ["IMAGE"]);
    assert_eq!(found[1].args_used, ["DISTRO", "VERSION"]);
}

#[test]
fn quoted_and_multiple_args_on_one_line() {
    let text = "ARG A=\"alpine\" B='3.20'\nFROM ${A}:${B}\n";
    assert_eq!(names(text, &[], None), ["alpine:3.20"]);
}

#[test]
fn platform_flag_with_arg_and_automatic_platform_args() {
    let text = "\
ARG ARM=linux/arm64
FROM --platform=${ARM} arm64v8/alpine:3.20 AS arm
FROM --platform=$BUILDPLATFORM golang:1.23 AS cross
FROM --platform=linux/amd64 debian:12
";
    let found = analyse(text, &[], None);
    let platforms: Vec<Option<&str>> = found
        .iter()
        .map(|image| image.platform.as_deref())
        .collect();
    assert_eq!(
        platforms,
        [Some("linux/arm64"), None, Some("linux/amd64")],
        "BUILDPLATFORM is not defined by the classic builder"
    );
}

#[test]
fn heredocs_do_not_hide_or_invent_from_lines() {
    let text = "\
# syntax=docker/dockerfile:1.7
FROM alpine:3.20 AS first
RUN <<EOF
echo 'FROM fake:image'
EOF
COPY <<-EOT /etc/motd
\tFROM also-fake
\tEOT
FROM node:22-alpine
";
    assert_eq!(names(text, &[], None), ["alpine:3.20", "node:22-alpine"]);
}

#[test]
fn line_continuations_and_comments_inside_them() {
    let text = "\
FROM \\
    --platform=linux/amd64 \\
# a comment in the middle
    python:3.12-slim \\
    AS base
from base
";
    let found = analyse(text, &[], None);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].image, "python:3.12-slim");
    assert_eq!(found[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(found[0].line, 1);
}

#[test]
fn lower_case_instructions() {
    let text =
        "arg base=alpine:3.19\nfrom ${base} as one\nrun true\nfrom one\ncopy --from=one / /\n";
    assert_eq!(names(text, &[], None), ["alpine:3.19"]);
}

#[test]
fn escape_directive_changes_the_continuation_character() {
    let text =
        "# escape=`\nFROM `\n  mcr.microsoft.com/windows/nanoserver:ltsc2022\nRUN dir c:\\\n";
    assert_eq!(
        names(text, &[], None),
        ["mcr.microsoft.com/windows/nanoserver:ltsc2022"]
    );
}

#[test]
fn target_builds_every_stage_up_to_it() {
    let text = "\
FROM node:22 AS deps
FROM python:3.12 AS unrelated
FROM deps AS dev
FROM nginx:1.27 AS prod
";
    assert_eq!(
        names(text, &[], Some("dev")),
        ["node:22", "python:3.12"],
        "the classic builder builds every stage before the target"
    );
    assert_eq!(names(text, &[], Some("deps")), ["node:22"]);
    assert_eq!(
        names(text, &[], None),
        ["node:22", "python:3.12", "nginx:1.27"]
    );
}

#[test]
fn digests_are_kept() {
    let digest = "sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d";
    let text = format!("FROM alpine:3.20@{digest}\n");
    assert_eq!(names(&text, &[], None), [format!("alpine:3.20@{digest}")]);
}

#[test]
fn errors_name_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "FROM alpine:3\nFROM ${UNSET}\n",
            2,
            "not an image reference",
        ),
        ("ARG T\nFROM alpine:${T}\n", 2, "\"alpine:\""),
        (
            "FROM alpine\nCOPY --from=Not_Valid / /\n",
            2,
            "neither an earlier stage nor a valid image",
        ),
        ("FROM ${X:?required}\n", 1, "X: required"),
    ];
    for (text, line, fragment) in cases {
        let error = base_images(text, &IndexMap::new(), None).unwrap_err();
        assert_eq!(error.line, Some(*line), "{text:?}: {error:?}");
        assert!(error.message.contains(fragment), "{text:?}: {error:?}");
    }
    let error = base_images("", &IndexMap::new(), None).unwrap_err();
    assert!(!error.message.is_empty());
}

/// Every prefix of every fixture Dockerfile either analyses or gives an error; none panics.
#[test]
fn truncated_dockerfiles_never_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("Dockerfile")
        {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for end in (0..=text.len()).filter(|end| text.is_char_boundary(*end)) {
            let args = IndexMap::from([("BASE".to_string(), "alpine:3".to_string())]);
            let _ = base_images(&text[..end], &args, None);
            let _ = base_images(&text[..end], &args, Some("base"));
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} prefixes checked");
}
