//! Compose's `pull_policy` of a service: checked as Compose checks it and
//! normalised as `docker compose config` prints it.
//!
//! Compose validates the value against its JSON schema pattern
//! `always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+`,
//! unanchored as JSON Schema patterns are: a value that contains one of these
//! words passes (`every_1hx` does, `latest` and `every_12` do not). `config`
//! prints `if_not_present` as `missing`. The parity tests in
//! `tests/catalog_parity.rs` hold bunker to the real binary.

use std::sync::LazyLock;

use regex::Regex;

/// The pattern of Compose's schema (compose-spec `pull_policy`).
pub const COMPOSE_PATTERN: &str =
    "always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+";

static PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(COMPOSE_PATTERN).expect("the pull_policy pattern is valid"));

/// The policy as `docker compose config` prints it, or Compose's complaint.
pub fn normalize(service: &str, value: &str) -> Result<String, String> {
    if !PATTERN.is_match(value) {
        return Err(format!(
            "services.{service}.pull_policy {value:?} is not a pull policy Compose accepts; \
             use always, never, missing (or if_not_present), build, refresh, daily, weekly \
             or every_<duration> such as every_12h"
        ));
    }
    Ok(match value {
        "if_not_present" => "missing".to_string(),
        other => other.to_string(),
    })
}

/// True when `docker compose pull` skips the service: `never` and `build`.
pub fn skipped_by_compose_pull(policy: Option<&str>) -> bool {
    matches!(policy, Some("never" | "build"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_accepted_and_rejected_as_compose_does() {
        for (value, printed) in [
            ("always", "always"),
            ("never", "never"),
            ("missing", "missing"),
            ("if_not_present", "missing"),
            ("build", "build"),
            ("daily", "daily"),
            ("weekly", "weekly"),
            ("every_12h", "every_12h"),
            ("every_1h30m", "every_1h30m"),
            ("refresh", "refresh"),
            ("every_1hx", "every_1hx"),
        ] {
            assert_eq!(normalize("app", value).as_deref(), Ok(printed), "{value}");
        }
        for value in ["latest", "bogus", "", "ALWAYS", "every_12", "every_x"] {
            let error = normalize("app", value).expect_err(value);
            assert!(error.starts_with("services.app.pull_policy"), "{error}");
        }
    }
}
