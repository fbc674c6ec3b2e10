//! Command-line spellings of library enums (`--compression`, `registry pull --format`),
//! kept here so the archive and registry code never depend on clap. Names and help
//! are what `#[derive(clap::ValueEnum)]` produced on the enums themselves.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::archive::Compression;
use crate::registry::pull::PullFormat;
use crate::restore::wire::WireMode;

impl ValueEnum for Compression {
    fn value_variants<'a>() -> &'a [Self] {
        &[Compression::Gzip, Compression::Zstd, Compression::None]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Compression::Gzip => {
                "Standard gzip in independent 1 MiB members (readable by `gunzip` and every \
                 `docker load`)"
            }
            Compression::Zstd => {
                "Zstandard (smaller and faster; Docker Engine 20.10 cannot load it directly, \
                 image-restore decompresses it on the workstation for such an engine)"
            }
            Compression::None => "The plain `docker save` tar",
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for PullFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[PullFormat::Docker, PullFormat::Oci, PullFormat::Dir]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            PullFormat::Docker => (
                "docker",
                "docker-save `.tar.gz` files, `docker load`-able, listed in manifest.json",
            ),
            PullFormat::Oci => (
                "oci",
                "An OCI image layout at the archive root (`index.json`, `blobs/`)",
            ),
            PullFormat::Dir => (
                "dir",
                "One directory per image: manifest.json, config and layer blobs as files",
            ),
        };
        Some(PossibleValue::new(name).help(help))
    }
}

impl ValueEnum for WireMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            WireMode::Auto,
            WireMode::None,
            WireMode::Gzip,
            WireMode::Zstd,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            WireMode::Auto => (
                "auto",
                "As stored when the engine reads the file's format; else gzip level 1 over SSH, \
                 the tar on a local socket",
            ),
            WireMode::None => ("none", "The decompressed tar"),
            WireMode::Gzip => (
                "gzip",
                "gzip: the file as stored when it is gzip, else recompressed here",
            ),
            WireMode::Zstd => (
                "zstd",
                "zstd (Docker 23.0 and later): the file as stored when it is zstd, else \
                 recompressed here",
            ),
        };
        Some(PossibleValue::new(name).help(help))
    }
}
