//! Compares bunker's interpolation with the real `docker-compose` binary on a
//! table of cases: every value must be identical, and every case Compose
//! rejects must be rejected with the same kind of error.

mod compose_oracle;

use bunker::catalog::interpolate::{InterpolationError, interpolate};
use compose_oracle::{config, environment_of, service_with_environment};

/// The variables both sides see (Compose through an env file).
const VARIABLES: &[(&str, &str)] = &[
    ("SET", "val"),
    ("EMPTY", ""),
    ("OTHER", "other"),
    ("lower", "low"),
    ("WITH_SPACE", "a b"),
];

const CASES: &[&str] = &[
    "plain text",
    "",
    "$SET",
    "${SET}",
    "$lower ${lower}",
    "$SET-x",
    "${SET}x$SET.y",
    "$UNSET|${UNSET}",
    "$$",
    "$$SET",
    "$${SET}",
    "$$$SET",
    "$",
    "a$",
    "a$ b$1 c$- d$. e$@",
    "$_ $1A",
    "${WITH_SPACE}",
    "${UNSET:-d}",
    "${EMPTY:-d}",
    "${SET:-d}",
    "${UNSET-d}",
    "${EMPTY-d}",
    "${SET-d}",
    "${SET-}",
    "${UNSET-}",
    "${UNSET:-}",
    "${SET:+alt}",
    "${EMPTY:+alt}",
    "${UNSET:+alt}",
    "${SET+alt}",
    "${EMPTY+alt}",
    "${UNSET+alt}",
    "${SET:?boom}",
    "${SET?boom}",
    "${EMPTY?boom}",
    "${UNSET:-${OTHER}}",
    "${UNSET:-$OTHER}",
    "${UNSET:-${UNSET2:-deep}}",
    "${UNSET-${UNSET:-${SET}}}",
    "${SET:+${OTHER}-x}",
    "${SET:+${UNSET}}",
    "${UNSET:-a b} c",
    "${UNSET:-a}b}",
    "${UNSET:-}}",
    "${SET:-a}}}",
    "${UNSET:-a} ${UNSET:-b}",
    "${UNSET:-{x}}",
    "${UNSET:-{}}",
    "${UNSET:-{x}y}",
    "${UNSET:-{}x}y}",
    "${UNSET:-{{}}}",
    "${UNSET:-$${}b}",
    "${UNSET:-$}",
    "${UNSET:-$$}",
    "${UNSET:-a}\n}",
    "${UNSET:-a}\n${SET}}",
    "${UNSET:-x:-y}",
    "${UNSET-x?y}",
    "${SET:-x}${OTHER:-y}",
    "registry.example.com/${lower}/app:${TAG:-1.2.3}",
    "héllo ${UNSET:-wörld} ✓ $SET€",
    // Errors.
    "${UNSET:?boom}",
    "${EMPTY:?boom}",
    "${UNSET?boom}",
    "${UNSET:?}",
    "${UNSET?}",
    "${UNSET?msg ${SET}}",
    "${SET:-${UNSET:?boom}}",
    "${UNSET:?outer ${UNSET2:?inner}}",
    "${}",
    "${SET",
    "x ${SET:x}",
    "${SET:}",
    "${A B}",
    "${A[x]}",
    "${A[x]:-d}",
    "${1A}",
    "${UNSET:-a\nb}",
    "${UNSET:-x ${SET}",
    "${SET:-x ${SET}",
    "${UNSET-${}}",
    "${SET:?e ${}}",
    "ok ${UNSET:?first} ${}",
];

fn lookup(name: &str) -> Option<String> {
    VARIABLES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, value)| value.to_string())
}

fn env_file() -> String {
    VARIABLES
        .iter()
        .map(|(name, value)| format!("{name}='{value}'\n"))
        .collect()
}

/// The text Compose's error output must contain for an error of ours.
fn expected_compose_error(error: &InterpolationError) -> Vec<String> {
    match error {
        InterpolationError::Required { .. } => vec![error.to_string()],
        InterpolationError::Syntax { text, .. } => vec![
            "invalid interpolation format for services.s.environment.X".to_string(),
            text.clone(),
        ],
    }
}

#[test]
fn interpolation_matches_docker_compose() {
    let ours: Vec<_> = CASES
        .iter()
        .map(|case| interpolate(case, &lookup))
        .collect();
    let mut mismatches = Vec::new();

    let accepted: Vec<(String, String)> = ours
        .iter()
        .enumerate()
        .filter(|(_, result)| result.is_ok())
        .map(|(index, _)| (format!("X{index}"), CASES[index].to_string()))
        .collect();
    let compose = config(&service_with_environment(&accepted), &env_file(), &[])
        .unwrap_or_else(|error| panic!("docker-compose rejected a case bunker accepts:\n{error}"));
    let theirs = environment_of(&compose);
    for (key, _) in &accepted {
        let index: usize = key[1..].parse().unwrap();
        let our_value = &ours[index].as_ref().unwrap().value;
        let their_value = theirs
            .iter()
            .find(|(their_key, _)| their_key == key)
            .map(|(_, value)| value);
        if their_value != Some(our_value) {
            mismatches.push(format!(
                "{:?}: bunker {our_value:?}, compose {their_value:?}",
                CASES[index]
            ));
        }
    }

    for (case, result) in CASES.iter().zip(&ours) {
        let Err(error) = result else { continue };
        let entries = [("X".to_string(), case.to_string())];
        match config(&service_with_environment(&entries), &env_file(), &[]) {
            Ok(compose) => mismatches.push(format!(
                "{case:?}: bunker fails with {error}, compose gives {:?}",
                environment_of(&compose)
            )),
            Err(stderr) => {
                for expected in expected_compose_error(error) {
                    if !stderr.contains(&expected) {
                        mismatches.push(format!(
                            "{case:?}: compose error lacks {expected:?}: {stderr}"
                        ));
                    }
                }
            }
        }
    }

    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from docker-compose:\n{}",
        mismatches.len(),
        CASES.len(),
        mismatches.join("\n")
    );
}
