//! Facts about the connected engine, read from its `/version` and `/info`.
//!
//! The architecture decides which archive directory an image belongs to, so it must
//! be the engine's own (never the workstation's) and in `uname -m` form (`x86_64`,
//! `aarch64`), while pulls and manifests need the OCI platform (`linux/amd64`).
//! [`EngineFacts::load_formats`] says which compressed tars its `docker load` reads.

use bollard::Docker;

use super::EngineFacts;
use crate::image::identity::ImageStore;

/// Reads the facts with one `/version` and one `/info` request. An engine that does not
/// report its architecture is an error: guessing one would file archives wrongly.
pub async fn read_facts(docker: &Docker) -> anyhow::Result<EngineFacts> {
    let version = docker.version().await?;
    let info = docker.info().await?;
    let negotiated = docker.client_version();
    let os = version
        .os
        .clone()
        .or(info.os_type.clone())
        .unwrap_or_else(|| "linux".to_owned());
    let machine = info
        .architecture
        .clone()
        .or(version.arch.clone())
        .unwrap_or_default();
    if machine.is_empty() {
        anyhow::bail!("the engine reports no architecture in /info or /version");
    }
    let arch = uname_machine(&machine);
    let platform = oci_platform(&os, version.arch.as_deref(), &arch);
    Ok(EngineFacts {
        version: version.version.unwrap_or_else(|| "unknown".to_owned()),
        api_version: format!("{}.{}", negotiated.major_version, negotiated.minor_version),
        arch,
        platform,
        image_store: image_store(info.driver_status.as_deref().unwrap_or_default()),
        storage_driver: info.driver.unwrap_or_default(),
        images: info.images.unwrap_or(0).max(0) as u64,
        name: info.name.unwrap_or_default(),
    })
}

/// The compressions an engine's `docker load` (`POST /images/load`) reads besides a
/// plain tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LoadFormats {
    /// gzip, single- or multi-member: every engine version.
    pub gzip: bool,
    /// Zstandard: Docker Engine 23.0 (API 1.42) and later, whose `pkg/archive`
    /// decompresses zstd (moby#41759). Docker 20.10 fails with
    /// "archive/tar: invalid tar header".
    pub zstd: bool,
}

impl EngineFacts {
    /// What this engine's `docker load` reads, from its version (or, when the
    /// version is not a number, its API version).
    pub fn load_formats(&self) -> LoadFormats {
        load_formats(&self.version, &self.api_version)
    }
}

/// [`LoadFormats`] of an engine reporting `version` (`20.10.24+dfsg1`, `26.1.5`)
/// and API `api_version` (`1.41`).
pub fn load_formats(version: &str, api_version: &str) -> LoadFormats {
    let major = leading_number(version);
    let zstd = match major {
        Some(major) => major >= 23,
        None => {
            let mut parts = api_version.split('.');
            let api = (
                parts.next().and_then(leading_number),
                parts.next().and_then(leading_number),
            );
            matches!(api, (Some(major), Some(minor)) if (major, minor) >= (1, 42))
        }
    };
    LoadFormats { gzip: true, zstd }
}

fn leading_number(text: &str) -> Option<u64> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The image store, from `/info` DriverStatus: the containerd store reports its
/// snapshotter as `driver-type io.containerd.snapshotter.v1`; graphdrivers report
/// other rows (`Backing Filesystem`, ...). Decided once per run: it says what an
/// image ID is ([`crate::image::identity`]).
pub fn image_store(driver_status: &[Vec<String>]) -> ImageStore {
    let containerd = driver_status.iter().any(|row| {
        row.first().is_some_and(|key| key == "driver-type")
            && row
                .get(1)
                .is_some_and(|value| value.starts_with("io.containerd.snapshotter"))
    });
    if containerd {
        ImageStore::Containerd
    } else {
        ImageStore::Classic
    }
}

/// `uname -m` spelling of an architecture; Go names (`amd64`, `arm64`) are translated,
/// since some engines report those in `/info`.
pub fn uname_machine(reported: &str) -> String {
    match reported {
        "amd64" | "x86-64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i686",
        other => other,
    }
    .to_owned()
}

/// `os/arch[/variant]` in OCI form from `/version` Os/Arch, using the `uname -m` machine
/// to find the ARM variant that `/version` leaves out.
pub fn oci_platform(os: &str, go_arch: Option<&str>, machine: &str) -> String {
    let arch = match go_arch {
        Some(arch) if !arch.is_empty() => arch.to_owned(),
        _ => match machine {
            "x86_64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            "i686" | "i386" => "386".to_owned(),
            other if other.starts_with("armv") => "arm".to_owned(),
            other => other.to_owned(),
        },
    };
    let variant = match (arch.as_str(), machine) {
        ("arm", "armv7l" | "armv7") => Some("v7"),
        ("arm", "armv6l" | "armv6") => Some("v6"),
        ("arm", "armv5l" | "armv5tel") => Some("v5"),
        _ => None,
    };
    match variant {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_follow_uname() {
        assert_eq!(uname_machine("x86_64"), "x86_64");
        assert_eq!(uname_machine("amd64"), "x86_64");
        assert_eq!(uname_machine("arm64"), "aarch64");
        assert_eq!(uname_machine("aarch64"), "aarch64");
        assert_eq!(uname_machine("armv7l"), "armv7l");
    }

    #[test]
    fn zstd_loads_from_engine_23_on() {
        assert!(!load_formats("20.10.24+dfsg1", "1.41").zstd);
        assert!(load_formats("20.10.24+dfsg1", "1.41").gzip);
        assert!(load_formats("23.0.0", "1.42").zstd);
        assert!(load_formats("26.1.5+dfsg1", "1.45").zstd);
        assert!(!load_formats("unknown", "1.41").zstd);
        assert!(load_formats("unknown", "1.43").zstd);
    }

    #[test]
    fn the_image_store_comes_from_the_driver_status() {
        let row = |key: &str, value: &str| vec![key.to_string(), value.to_string()];
        assert_eq!(
            image_store(&[row("driver-type", "io.containerd.snapshotter.v1")]),
            ImageStore::Containerd
        );
        assert_eq!(
            image_store(&[
                row("Backing Filesystem", "extfs"),
                row("Supports d_type", "true")
            ]),
            ImageStore::Classic
        );
        assert_eq!(image_store(&[]), ImageStore::Classic);
    }

    #[test]
    fn platforms_in_oci_form() {
        assert_eq!(
            oci_platform("linux", Some("amd64"), "x86_64"),
            "linux/amd64"
        );
        assert_eq!(
            oci_platform("linux", Some("arm64"), "aarch64"),
            "linux/arm64"
        );
        assert_eq!(oci_platform("linux", Some("arm"), "armv7l"), "linux/arm/v7");
        assert_eq!(oci_platform("linux", None, "armv6l"), "linux/arm/v6");
        assert_eq!(oci_platform("linux", None, "x86_64"), "linux/amd64");
    }
}
