//! `cargo bench --bench catalog`: catalogs generated project trees (100 and 500
//! projects, each with anchors, variables, a pulled, a built and a profiled
//! service and a multi-stage Dockerfile) and prints the time and projects/second.
//! The issue's budget: 100 projects in under 200 ms on a warm cache.

use std::path::Path;
use std::time::{Duration, Instant};

use bunker::catalog::{CatalogOptions, load_catalog};

fn write_project(root: &Path, index: usize) {
    let directory = root.join(format!("project-{index:04}"));
    std::fs::create_dir_all(directory.join("app")).expect("create project");
    let compose = format!(
        r#"x-defaults: &defaults
  restart: unless-stopped
  environment:
    TZ: ${{TZ:-UTC}}
services:
  web:
    <<: *defaults
    image: ${{WEB_IMAGE}}
    labels:
      - "traefik.http.routers.p{index}.rule=Host(`${{HOST:-p{index}.example.com}}`)"
  app:
    <<: *defaults
    build:
      context: app
      args:
        BASE_IMAGE: ${{BASE_IMAGE}}
        VERSION: ${{APP_VERSION:-1.{index}}}
  tools:
    image: alpine/git:${{GIT_TAG:-v2.45.2}}
    profiles: [tools]
"#
    );
    std::fs::write(directory.join("docker-compose.yaml"), compose).expect("write compose");
    std::fs::write(
        directory.join(".env-dist"),
        format!("# project {index}\nWEB_IMAGE=nginx:1.27.{index}\nBASE_IMAGE=debian:12-slim\nHOST=p{index}.example.org\n"),
    )
    .expect("write env");
    std::fs::write(
        directory.join("app/Dockerfile"),
        "# syntax=docker/dockerfile:1\nARG BASE_IMAGE=debian:12\nFROM golang:1.23 AS build\nRUN <<EOT\ngo build ./...\nEOT\nFROM ${BASE_IMAGE}\nCOPY --from=build /out /usr/local/bin\n",
    )
    .expect("write Dockerfile");
}

fn measure(projects: usize, rounds: u32) -> Duration {
    let root = tempfile::tempdir().expect("temp dir");
    for index in 0..projects {
        write_project(root.path(), index);
    }
    let options = CatalogOptions::new(root.path());
    let warm = load_catalog(&options);
    assert_eq!(warm.projects.len(), projects);
    assert!(warm.errors.is_empty(), "{:?}", warm.errors);
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(load_catalog(&options));
    }
    start.elapsed() / rounds
}

fn main() {
    let hundred = measure(100, 20);
    println!(
        "catalog of 100 projects: {:.1} ms per run (budget 200 ms), {:.0} projects/s",
        hundred.as_secs_f64() * 1000.0,
        100.0 / hundred.as_secs_f64()
    );
    let five_hundred = measure(500, 5);
    println!(
        "catalog of 500 projects: {:.1} ms per run, {:.0} projects/s",
        five_hundred.as_secs_f64() * 1000.0,
        500.0 / five_hundred.as_secs_f64()
    );
}
