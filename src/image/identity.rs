//! What identifies an image's content whatever image store holds it.
//!
//! An engine's image ID is not portable: the classic image store names an image by
//! its config digest, the containerd image store by its manifest (or index) digest,
//! and a docker-archive loaded onto the containerd store gets a manifest the engine
//! writes itself. So an archive records the config digest, the diff IDs, the
//! manifest digests it knows and a fingerprint of the config's own fields
//! ([`ConfigFields`]), and a restore compares them with what the target engine can
//! report ([`compare`]): an ID match is exact; on a store whose IDs say nothing
//! about the recorded ones, equal diff IDs plus an equal config fingerprint are the
//! same content, and anything that differs is a different image.

use std::collections::BTreeMap;

use bollard::models::ImageInspect;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::archive::digest::hex_lower;

/// Which image store an engine keeps images in: it decides what an image ID is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStore {
    /// graphdriver store (Docker ≤ 28 default): image ID = config digest.
    Classic,
    /// containerd image store (`containerd-snapshotter`): image ID = manifest or index digest.
    Containerd,
}

impl ImageStore {
    pub fn name(self) -> &'static str {
        match self {
            ImageStore::Classic => "classic",
            ImageStore::Containerd => "containerd",
        }
    }
}

/// The config fields that decide how a container of the image runs, normalised so
/// that the image config JSON and either store's `/images/{name}/json` give the
/// same value (absent, `null` and empty are one thing; labels sorted; the creation
/// time compared as an instant, not as text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigFields {
    created_unix_nanos: Option<i64>,
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
    user: Option<String>,
    env: Vec<String>,
    cmd: Vec<String>,
    entrypoint: Vec<String>,
    working_dir: Option<String>,
    labels: BTreeMap<String, String>,
}

impl ConfigFields {
    /// From an image config JSON (docker or OCI; `config` holds the runtime fields).
    pub fn from_config_json(config: &serde_json::Value) -> ConfigFields {
        let text = |value: Option<&serde_json::Value>| {
            value
                .and_then(serde_json::Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let list = |value: Option<&serde_json::Value>| -> Vec<String> {
            value
                .and_then(serde_json::Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let runtime = config.get("config");
        let field = |name: &str| runtime.and_then(|runtime| runtime.get(name));
        let labels = field("Labels")
            .and_then(serde_json::Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        ConfigFields {
            created_unix_nanos: config
                .get("created")
                .and_then(serde_json::Value::as_str)
                .and_then(instant),
            os: text(config.get("os")),
            architecture: text(config.get("architecture")),
            variant: text(config.get("variant")),
            user: text(field("User")),
            env: list(field("Env")),
            cmd: list(field("Cmd")),
            entrypoint: list(field("Entrypoint")),
            working_dir: text(field("WorkingDir")),
            labels,
        }
    }

    /// From the engine's `/images/{name}/json`.
    pub fn from_inspect(inspect: &ImageInspect) -> ConfigFields {
        let text = |value: &Option<String>| value.clone().filter(|text| !text.is_empty());
        let config = inspect.config.clone().unwrap_or_default();
        ConfigFields {
            created_unix_nanos: inspect.created.as_deref().and_then(instant),
            os: text(&inspect.os),
            architecture: text(&inspect.architecture),
            variant: text(&inspect.variant),
            user: text(&config.user),
            env: config.env.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            working_dir: text(&config.working_dir),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
        }
    }

    /// `sha256:<hex>` of the fields' canonical JSON: what manifest.json records.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("config fields serialize");
        format!("sha256:{}", hex_lower(&Sha256::digest(&canonical)))
    }
}

/// An RFC 3339 time as nanoseconds since the epoch; the zero time (`0001-01-01…`,
/// what the classic store reports for an image without one) counts as absent.
fn instant(text: &str) -> Option<i64> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    if time.timestamp() <= chrono::DateTime::UNIX_EPOCH.timestamp() - 62_000_000_000 {
        return None;
    }
    time.timestamp_nanos_opt()
}

/// What an archive recorded about an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedIdentity {
    /// The archiving engine's image ID (config digest or manifest digest, by its store).
    pub docker_id: Option<String>,
    /// The config digest (absent in manifests of bunker before 0.x identity fields).
    pub config_digest: Option<String>,
    /// Manifest or index digests the image had (containerd store, registry).
    pub manifest_digests: Vec<String>,
    /// Diff IDs, in order (empty in the old tool's manifests).
    pub diff_ids: Vec<String>,
    /// [`ConfigFields::fingerprint`] of the image config.
    pub config_fingerprint: Option<String>,
}

impl RecordedIdentity {
    /// Every engine image ID the image may have: the recorded engine ID, the config
    /// digest (classic store), the manifest digests (containerd store).
    pub fn candidate_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for id in self
            .docker_id
            .iter()
            .chain(self.config_digest.iter())
            .chain(self.manifest_digests.iter())
        {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

/// What an engine reports about one image, reduced to what identity needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineImage {
    pub id: String,
    pub diff_ids: Vec<String>,
    pub config: ConfigFields,
}

impl EngineImage {
    pub fn from_inspect(inspect: &ImageInspect) -> Option<EngineImage> {
        Some(EngineImage {
            id: inspect.id.clone().filter(|id| !id.is_empty())?,
            diff_ids: inspect
                .root_fs
                .as_ref()
                .and_then(|root_fs| root_fs.layers.clone())
                .unwrap_or_default(),
            config: ConfigFields::from_inspect(inspect),
        })
    }
}

/// How an image on the engine compares with a recorded identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The same content; says how it was established.
    Same(String),
    /// The same layers, and nothing recorded to compare the config with (a
    /// manifest of an older bunker): not enough to skip a load, enough to accept one.
    SameLayers(String),
    /// Nothing comparable recorded (the old tool's manifests: no layers, and an ID
    /// that may come from the other store).
    Unknown,
    /// A different image; says what differs.
    Different(String),
}

impl Verdict {
    pub fn is_same(&self) -> bool {
        matches!(self, Verdict::Same(_))
    }
}

/// Compares an engine's image with a recorded identity, by what the store can report.
pub fn compare(recorded: &RecordedIdentity, engine: &EngineImage, store: ImageStore) -> Verdict {
    if recorded.candidate_ids().contains(&engine.id) {
        return Verdict::Same(format!("image ID {} matches", short(&engine.id)));
    }
    if store == ImageStore::Classic
        && let Some(config_digest) = &recorded.config_digest
    {
        // The classic store's ID is the config digest: nothing else can be the same image.
        return Verdict::Different(format!(
            "the engine has {}, the archive {} (config digests differ)",
            short(&engine.id),
            short(config_digest)
        ));
    }
    if recorded.diff_ids.is_empty() {
        // The old tool's manifests: an ID that may come from the other store, no layers.
        return Verdict::Unknown;
    }
    if engine.diff_ids != recorded.diff_ids {
        return Verdict::Different(format!(
            "its layers differ from the archived image's ({} vs {} layers{})",
            engine.diff_ids.len(),
            recorded.diff_ids.len(),
            if engine.diff_ids.len() == recorded.diff_ids.len() {
                ", other digests"
            } else {
                ""
            }
        ));
    }
    match &recorded.config_fingerprint {
        Some(fingerprint) if *fingerprint == engine.config.fingerprint() => Verdict::Same(format!(
            "{} layers and the config match ({} store ID {})",
            engine.diff_ids.len(),
            store.name(),
            short(&engine.id)
        )),
        Some(_) => Verdict::Different(
            "its layers match the archived image's but its config (created, env, cmd, \
             entrypoint, user, working dir, labels or platform) differs"
                .to_string(),
        ),
        None => Verdict::SameLayers(format!(
            "{} layers match; the manifest records no config to compare (written by an \
             older bunker)",
            engine.diff_ids.len()
        )),
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ImageConfig, ImageInspectRootFs};

    const CONFIG: &str = r#"{
        "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05.123456789Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/app"], "WorkingDir": "/",
                   "Labels": {"b": "2", "a": "1"}, "User": ""},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:l1"]}
    }"#;

    fn inspect(id: &str, created: &str, cmd: &str) -> ImageInspect {
        ImageInspect {
            id: Some(id.into()),
            created: Some(created.into()),
            os: Some("linux".into()),
            architecture: Some("amd64".into()),
            variant: Some(String::new()),
            config: Some(ImageConfig {
                env: Some(vec!["PATH=/bin".into()]),
                cmd: Some(vec![cmd.into()]),
                working_dir: Some("/".into()),
                labels: Some([("a".into(), "1".into()), ("b".into(), "2".into())].into()),
                entrypoint: None,
                user: None,
                ..Default::default()
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(vec!["sha256:l1".into()]),
            }),
            ..Default::default()
        }
    }

    fn recorded() -> RecordedIdentity {
        let config: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        RecordedIdentity {
            docker_id: Some("sha256:cfg".into()),
            config_digest: Some("sha256:cfg".into()),
            manifest_digests: vec![],
            diff_ids: vec!["sha256:l1".into()],
            config_fingerprint: Some(ConfigFields::from_config_json(&config).fingerprint()),
        }
    }

    #[test]
    fn the_config_json_and_the_inspect_output_give_one_fingerprint() {
        let config: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        // The engine prints the time in its own form: the instant is compared.
        let engine = inspect("sha256:x", "2026-01-02T03:04:05.123456789+00:00", "/app");
        assert_eq!(
            ConfigFields::from_config_json(&config),
            ConfigFields::from_inspect(&engine)
        );
        let other = inspect("sha256:x", "2026-01-02T03:04:05.123456789Z", "/other");
        assert_ne!(
            ConfigFields::from_config_json(&config).fingerprint(),
            ConfigFields::from_inspect(&other).fingerprint()
        );
    }

    #[test]
    fn the_zero_time_counts_as_no_time() {
        assert_eq!(instant("0001-01-01T00:00:00Z"), None);
        assert!(instant("1970-01-01T00:00:01Z").is_some());
    }

    #[test]
    fn an_id_match_is_exact_on_either_store() {
        let engine =
            EngineImage::from_inspect(&inspect("sha256:cfg", "2020-01-01T00:00:00Z", "/x"))
                .unwrap();
        assert!(compare(&recorded(), &engine, ImageStore::Classic).is_same());
        assert!(compare(&recorded(), &engine, ImageStore::Containerd).is_same());
    }

    #[test]
    fn the_classic_store_trusts_only_the_config_digest() {
        let engine = EngineImage::from_inspect(&inspect(
            "sha256:other",
            "2026-01-02T03:04:05.123456789Z",
            "/app",
        ))
        .unwrap();
        assert!(matches!(
            compare(&recorded(), &engine, ImageStore::Classic),
            Verdict::Different(_)
        ));
    }

    #[test]
    fn the_containerd_store_compares_layers_and_config() {
        let same = EngineImage::from_inspect(&inspect(
            "sha256:manifest",
            "2026-01-02T03:04:05.123456789Z",
            "/app",
        ))
        .unwrap();
        assert!(compare(&recorded(), &same, ImageStore::Containerd).is_same());
        // Same layers, another command: a different image.
        let other_cmd = EngineImage::from_inspect(&inspect(
            "sha256:manifest",
            "2026-01-02T03:04:05.123456789Z",
            "/sh",
        ))
        .unwrap();
        assert!(matches!(
            compare(&recorded(), &other_cmd, ImageStore::Containerd),
            Verdict::Different(_)
        ));
        let mut other_layers = same.clone();
        other_layers.diff_ids = vec!["sha256:l2".into()];
        assert!(matches!(
            compare(&recorded(), &other_layers, ImageStore::Containerd),
            Verdict::Different(_)
        ));
    }

    #[test]
    fn older_manifests_match_by_layers_only_and_never_by_name() {
        let mut older = recorded();
        older.config_digest = None;
        older.config_fingerprint = None;
        let engine =
            EngineImage::from_inspect(&inspect("sha256:m", "2020-01-01T00:00:00Z", "/")).unwrap();
        // An older manifest's docker_id may be a manifest digest: layers decide, weakly.
        assert!(matches!(
            compare(&older, &engine, ImageStore::Classic),
            Verdict::SameLayers(_)
        ));
        let mut no_layers = older.clone();
        no_layers.diff_ids.clear();
        assert_eq!(
            compare(&no_layers, &engine, ImageStore::Containerd),
            Verdict::Unknown
        );
    }
}
