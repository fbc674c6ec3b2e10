//! Whether a pull job pulls, by the service's Compose `pull_policy`, the way
//! Compose decides it.
//!
//! `image-build` and `image-archive` refresh images as `docker compose pull`
//! does ([`PullMode::Refresh`]): every service is pulled except those with
//! `pull_policy: never` or `build`, and `missing`/`if_not_present` ones whose
//! image is on the engine under a tag other than `latest` (compose
//! `pkg/compose/pull.go`). `install` pulls as `docker compose up` does
//! ([`PullMode::Up`]): unset and `missing` pull only an absent image, `never`
//! and `build` never pull, anything else (`always`, `refresh`, `daily`,
//! `weekly`, `every_<duration>`) pulls. An image a policy forbids pulling must
//! already be on the engine. Base images (`FROM`) have no policy and keep
//! their own rules.

/// Which Compose command's pull rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullMode {
    /// `docker compose pull` (image-build, image-archive).
    #[default]
    Refresh,
    /// `docker compose up` (install).
    Up,
}

/// What to do with one pull job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullDecision {
    Pull,
    /// Do not pull; the engine's image is used (it must be there).
    UseEngineCopy(&'static str),
}

/// Whether to pull an image with `policy` (as `docker compose config` prints
/// it) in `mode`; `present` tells whether the engine has it.
pub fn decide(mode: PullMode, policy: Option<&str>, image: &str, present: bool) -> PullDecision {
    match (mode, policy) {
        (_, Some("never")) => PullDecision::UseEngineCopy("pull_policy: never"),
        (_, Some("build")) => PullDecision::UseEngineCopy("pull_policy: build"),
        (PullMode::Refresh, Some("missing")) if present && !tagged_latest(image) => {
            PullDecision::UseEngineCopy("pull_policy: missing and the image is present")
        }
        (PullMode::Up, None | Some("missing")) if present => {
            PullDecision::UseEngineCopy("present, and Compose pulls only missing images")
        }
        _ => PullDecision::Pull,
    }
}

/// True unless the policy could skip the pull, so the engine need not be asked.
pub fn needs_presence(mode: PullMode, policy: Option<&str>) -> bool {
    matches!(
        (mode, policy),
        (_, Some("never" | "build" | "missing")) | (PullMode::Up, None)
    )
}

/// Compose's `imageAlreadyPresent` counts an image without a tag (or a
/// digest) as not present, and one tagged `latest` too.
fn tagged_latest(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// When services sharing one image have different policies, the one that
/// pulls most decides (Compose pulls the image once if any service pulls it).
pub fn stronger<'a>(left: Option<&'a str>, right: Option<&'a str>) -> Option<&'a str> {
    let rank = |policy: Option<&str>| match policy {
        Some("never" | "build") => 0,
        Some("missing") => 1,
        None => 2,
        Some(_) => 3,
    };
    if rank(right) > rank(left) {
        right
    } else {
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PullDecision::{Pull, UseEngineCopy};

    fn pulls(mode: PullMode, policy: Option<&str>, image: &str, present: bool) -> bool {
        decide(mode, policy, image, present) == Pull
    }

    #[test]
    fn refresh_pulls_as_compose_pull_does() {
        let mode = PullMode::Refresh;
        assert!(pulls(mode, None, "app:1", true));
        assert!(pulls(mode, Some("always"), "app:1", true));
        assert!(pulls(mode, Some("daily"), "app:1", true));
        assert!(!pulls(mode, Some("never"), "app:1", false));
        assert!(!pulls(mode, Some("build"), "app:1", true));
        assert!(!pulls(mode, Some("missing"), "app:1", true));
        assert!(pulls(mode, Some("missing"), "app:1", false));
        assert!(pulls(mode, Some("missing"), "app", true));
        assert!(pulls(mode, Some("missing"), "app:latest", true));
        assert!(pulls(mode, Some("missing"), "r:5000/app", true));
        assert!(!pulls(mode, Some("missing"), "r:5000/app:2", true));
    }

    #[test]
    fn up_pulls_as_compose_up_does() {
        let mode = PullMode::Up;
        assert!(!pulls(mode, None, "app:latest", true));
        assert!(pulls(mode, None, "app:1", false));
        assert!(!pulls(mode, Some("missing"), "app:1", true));
        assert!(pulls(mode, Some("always"), "app:1", true));
        assert!(pulls(mode, Some("weekly"), "app:1", true));
        assert!(!pulls(mode, Some("never"), "app:1", false));
        assert!(matches!(
            decide(mode, Some("build"), "app:1", true),
            UseEngineCopy(_)
        ));
    }

    #[test]
    fn the_policy_that_pulls_most_wins() {
        assert_eq!(stronger(Some("never"), None), None);
        assert_eq!(stronger(None, Some("always")), Some("always"));
        assert_eq!(stronger(Some("missing"), Some("build")), Some("missing"));
    }
}
