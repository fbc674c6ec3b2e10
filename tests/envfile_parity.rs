//! Compares bunker's `.env` parser with the real `docker-compose` binary: each
//! env file of the table is given to `docker-compose --env-file`, and every
//! variable must come out with the same value (or be unset on both sides);
//! files Compose rejects must be rejected by bunker too.

mod compose_oracle;

use std::path::Path;

use bunker::catalog::envfile::parse_env_file;
use compose_oracle::{config, environment_of, service_with_environment};

struct Case {
    text: &'static str,
    /// The process environment both sides see.
    process: &'static [(&'static str, &'static str)],
    /// Names to probe besides the keys bunker found (to check they are unset).
    probe: &'static [&'static str],
}

const fn case(text: &'static str) -> Case {
    Case {
        text,
        process: &[],
        probe: &[],
    }
}

const CASES: &[Case] = &[
    case(""),
    case("\n\n  \n"),
    case("# only a comment\n   # indented comment"),
    case("A=1"),
    case("A=1\nB=2\n"),
    case("A=1\r\nB=\"q\"\r\nC=c \r\n"),
    case("export A=1\nexport\tB=2\n"),
    case("exportB=2\nexport=3\n"),
    case("  F = f\nG: g\nH :h\n"),
    case("D= spaced value  \n"),
    case("A=#x\nB=a #c\nC=a#c\nD=x\t#c\n"),
    case("A=\nB=  \nC=\"\" # c\n"),
    case("A=x\n\n# c\nB=y\n"),
    Case {
        text: "A=\"x\" y=z\nB='b' # comment\n",
        process: &[],
        probe: &["y"],
    },
    case("A='a\\nb $X'\n"),
    case("A='it\\'s'\nB='[\\\\][\\q]'\n"),
    case("A='multi\nline'\nB=2\n"),
    case("A=\"line1\nline2\"\nB=after\n"),
    case("A=\"a\\nb\\tc\\\\d\\\"e\\$f\\x\"\n"),
    case("A=\"a\\ab\\bc\\fd\\re\\vg\"\n"),
    case("A=\"[\\0][\\012][\\08][\\0777][\\0377][\\c][\\01011][\\\\n][\\\\\\\"][\\q]\"\n"),
    Case {
        text: "A=$PROC\nB=${PROC}-x\nC=\"$PROC\"\nD='$PROC'\n",
        process: &[("PROC", "proc")],
        probe: &[],
    },
    case("A=$$1\nB=\"$$1\"\nC='$$1'\nD=\\$x\n"),
    Case {
        text: "A=${MISSING:-dflt}\nB=${EMPTY_PROC-dflt}\nC=${EMPTY_PROC:-dflt}\n",
        process: &[("EMPTY_PROC", "")],
        probe: &[],
    },
    case("A=\"${B:-x\\\"y}\"\n"),
    case("A=one\nB=${A}/two\nC=${LATER}\nLATER=1\n"),
    Case {
        text: "SHADOW=file\nB=${SHADOW}\n",
        process: &[("SHADOW", "from-process")],
        probe: &[],
    },
    Case {
        text: "PROC\nNOPE\nA=1\n",
        process: &[("PROC", "proc")],
        probe: &["NOPE"],
    },
    Case {
        text: "A=1\nTRAILING",
        process: &[],
        probe: &["TRAILING"],
    },
    case("A=1\nA=2\n"),
    case("A=héllo wörld\n"),
    case("IMAGE=registry.example.com/app\nTAG=${VERSION:-1.2}\nFULL=\"${IMAGE}:${TAG}\"\n"),
    // Rejected by both.
    case("A=1\nB=\"open\n"),
    case("A='x\n"),
    case("A B=x\n"),
    case("A=ok\n\nB@=x\n"),
    case("A='x'\"y\"=z\n"),
    case("A=ok\nB=${\n"),
    case("A=\"x\ny\"\n\nB=\"${X:?boom}\"\n"),
    case("# c\nA=${X?}\n"),
];

fn is_variable_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
        && characters.all(|character| character == '_' || character.is_ascii_alphanumeric())
}

const UNSET: &str = "<unset>";

#[test]
fn env_files_match_docker_compose() {
    let mut mismatches = Vec::new();
    for case in CASES {
        let lookup = |name: &str| {
            case.process
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, value)| value.to_string())
        };
        let ours = parse_env_file(Path::new("test.env"), case.text, &lookup);
        let mut names: Vec<String> = case.probe.iter().map(|name| name.to_string()).collect();
        if let Ok(values) = &ours {
            names.extend(values.keys().cloned());
        }
        names.retain(|name| is_variable_name(name));
        let entries: Vec<(String, String)> = names
            .iter()
            .map(|name| (name.clone(), format!("${{{name}-{UNSET}}}")))
            .collect();
        let compose = config(&service_with_environment(&entries), case.text, case.process);
        match (&ours, compose) {
            (Ok(values), Ok(compose)) => {
                let theirs = environment_of(&compose);
                for name in &names {
                    // Compose's project environment: the process environment
                    // overrides the file.
                    let our_value = lookup(name)
                        .or_else(|| values.get(name).cloned())
                        .unwrap_or_else(|| UNSET.to_string());
                    let their_value = theirs
                        .iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.as_str());
                    if their_value != Some(our_value.as_str()) {
                        mismatches.push(format!(
                            "{:?}: {name} is {our_value:?} for bunker, {their_value:?} for compose",
                            case.text
                        ));
                    }
                }
            }
            (Err(error), Err(_)) => {
                assert!(
                    error.line >= 1,
                    "{:?}: error without a line: {error}",
                    case.text
                );
            }
            (Ok(values), Err(stderr)) => mismatches.push(format!(
                "{:?}: bunker reads {values:?}, compose fails: {stderr}",
                case.text
            )),
            (Err(error), Ok(compose)) => mismatches.push(format!(
                "{:?}: bunker fails ({error}), compose reads {:?}",
                case.text,
                environment_of(&compose)
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differences from docker-compose:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
