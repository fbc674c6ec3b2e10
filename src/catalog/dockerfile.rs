//! Finds the images a Dockerfile builds from: its `FROM` lines (with global
//! `ARG` defaults and build args substituted, `--platform=` kept) and
//! `COPY --from=<image>`, leaving out `scratch` and references to earlier stages.
//!
//! The engine uses the classic builder, which builds every stage up to the
//! target, so the images of all those stages are needed for an offline rebuild.
//! Parsing (heredocs, line continuations, lower-case instructions, parser
//! directives) is done by `parse-dockerfile`; variable expansion follows the
//! Dockerfile shell-word rules.

use indexmap::IndexMap;
use parse_dockerfile::{Instruction, parse};

use crate::image::reference::ImageReference;

/// An image a build needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference after substitution, as written (not normalised).
    pub image: String,
    /// `--platform=` of the `FROM` line, after substitution, when not empty.
    pub platform: Option<String>,
    /// 1-based line of the `FROM` or `COPY` instruction.
    pub line: usize,
    /// `ARG`s the reference was built from, in order.
    pub args_used: Vec<String>,
}

/// A Dockerfile problem, with the 1-based line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileError {
    pub line: Option<usize>,
    pub message: String,
}

/// The external images of a Dockerfile's stages up to `target` (all stages without
/// one), in order of first appearance, given the build `args` Compose passes.
pub fn base_images(
    text: &str,
    args: &IndexMap<String, String>,
    target: Option<&str>,
) -> Result<Vec<BaseImage>, DockerfileError> {
    let dockerfile = parse(text).map_err(|error| DockerfileError {
        line: Some(error.line()).filter(|line| *line > 0),
        message: format!("{error:#}"),
    })?;
    let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let escape = dockerfile
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |directive| directive.value.value);

    let mut global_args: IndexMap<String, Option<String>> = IndexMap::new();
    for arg in dockerfile.global_args() {
        for word in split_words(&arg.arguments.value) {
            let (name, default) = match word.split_once('=') {
                Some((name, default)) => (name.to_string(), Some(default.to_string())),
                None => (word.clone(), None),
            };
            let value = match args.get(&name) {
                Some(value) => Some(value.clone()),
                None => match default {
                    Some(default) => {
                        let lookup = |key: &str| global_args.get(key).cloned().flatten();
                        Some(expand(&default, &lookup, escape, &mut Vec::new()).map_err(
                            |message| DockerfileError {
                                line: Some(line_at(arg.arguments.span.start)),
                                message,
                            },
                        )?)
                    }
                    None => None,
                },
            };
            global_args.insert(name, value);
        }
    }
    let lookup = |key: &str| global_args.get(key).cloned().flatten();

    let stages: Vec<_> = dockerfile.stages().collect();
    let stage_names: Vec<Option<String>> = stages
        .iter()
        .map(|stage| {
            stage
                .from
                .as_
                .as_ref()
                .map(|(_, name)| name.value.to_lowercase())
        })
        .collect();
    let last_stage = match target {
        None => stages.len().saturating_sub(1),
        Some(target) => stage_names
            .iter()
            .position(|name| name.as_deref() == Some(target.to_lowercase().as_str()))
            .ok_or_else(|| DockerfileError {
                line: None,
                message: format!(
                    "build target {target:?} is not a stage of this Dockerfile (stages: {}); fix `build.target`",
                    stage_names.iter().flatten().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?,
    };

    let mut images: Vec<BaseImage> = Vec::new();
    let mut add = |image: BaseImage| {
        if !images.iter().any(|known| known.image == image.image) {
            images.push(image);
        }
    };
    for (index, stage) in stages.iter().enumerate().take(last_stage + 1) {
        let from = stage.from;
        let line = line_at(from.from.span.start);
        let fail = |message: String| DockerfileError {
            line: Some(line),
            message,
        };
        let mut args_used = Vec::new();
        let image = expand(&from.image.value, &lookup, escape, &mut args_used).map_err(&fail)?;
        let mut platform = None;
        for flag in &from.options {
            if flag.name.value == "platform"
                && let Some(value) = &flag.value
            {
                let expanded =
                    expand(&value.value, &lookup, escape, &mut Vec::new()).map_err(&fail)?;
                platform = Some(expanded).filter(|platform| !platform.is_empty());
            }
        }
        if !is_stage_or_scratch(&image, &stage_names[..index], index) {
            ImageReference::parse(&image).map_err(|error| {
                fail(format!(
                    "FROM {:?} expands to {image:?}, which is not an image reference ({}); set the build arg or the ARG default",
                    from.image.value, error.reason()
                ))
            })?;
            add(BaseImage {
                image,
                platform,
                line,
                args_used,
            });
        }

        for instruction in stage.instructions {
            let Instruction::Copy(copy) = instruction else {
                continue;
            };
            for flag in &copy.options {
                let Some(value) = flag.value.as_ref().filter(|_| flag.name.value == "from") else {
                    continue;
                };
                let line = line_at(copy.copy.span.start);
                let mut args_used = Vec::new();
                let source =
                    expand(&value.value, &lookup, escape, &mut args_used).map_err(|message| {
                        DockerfileError {
                            line: Some(line),
                            message,
                        }
                    })?;
                if is_stage_or_scratch(&source, &stage_names[..index], index) {
                    continue;
                }
                ImageReference::parse(&source).map_err(|error| DockerfileError {
                    line: Some(line),
                    message: format!(
                        "COPY --from={source:?} names neither an earlier stage nor a valid image ({})",
                        error.reason()
                    ),
                })?;
                add(BaseImage {
                    image: source,
                    platform: None,
                    line,
                    args_used,
                });
            }
        }
    }
    Ok(images)
}

/// `scratch`, the name of an earlier stage, or an earlier stage's index.
fn is_stage_or_scratch(name: &str, earlier_stages: &[Option<String>], index: usize) -> bool {
    let lower = name.to_lowercase();
    lower == "scratch"
        || earlier_stages.iter().flatten().any(|stage| *stage == lower)
        || name.parse::<usize>().is_ok_and(|number| number < index)
}

/// Splits `ARG` arguments into words, honouring quotes (`A="x y" B=1`), with quotes removed.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Expands Dockerfile variables in `word`: `$NAME`, `${NAME}`, `${NAME:-word}`,
/// `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`, `${NAME:?msg}`, `${NAME?msg}`;
/// the escape character makes the next character literal; single quotes are literal.
/// Names that were looked up are appended to `used`.
pub fn expand(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
    used: &mut Vec<String>,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut position = 0;
    let text = expand_until(&chars, &mut position, None, lookup, escape, used)?;
    Ok(text)
}

fn expand_until(
    chars: &[char],
    position: &mut usize,
    stop: Option<char>,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
    used: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut in_double_quotes = false;
    while *position < chars.len() {
        let c = chars[*position];
        if Some(c) == stop && !in_double_quotes {
            return Ok(out);
        }
        *position += 1;
        match c {
            c if c == escape => {
                if let Some(&next) = chars.get(*position) {
                    out.push(next);
                    *position += 1;
                }
            }
            '\'' if !in_double_quotes => {
                while *position < chars.len() && chars[*position] != '\'' {
                    out.push(chars[*position]);
                    *position += 1;
                }
                *position += 1;
            }
            '"' => in_double_quotes = !in_double_quotes,
            '$' => out.push_str(&expand_variable(chars, position, lookup, escape, used)?),
            c => out.push(c),
        }
    }
    if stop.is_some() {
        return Err("missing '}' in variable substitution".into());
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn expand_variable(
    chars: &[char],
    position: &mut usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
    used: &mut Vec<String>,
) -> Result<String, String> {
    let mut note = |name: &str| {
        if !used.iter().any(|known| known == name) {
            used.push(name.to_string());
        }
    };
    if chars.get(*position) != Some(&'{') {
        let start = *position;
        while *position < chars.len() && is_name_char(chars[*position]) {
            *position += 1;
        }
        if start == *position {
            return Ok("$".into());
        }
        let name: String = chars[start..*position].iter().collect();
        note(&name);
        return Ok(lookup(&name).unwrap_or_default());
    }
    *position += 1;
    let start = *position;
    while *position < chars.len() && is_name_char(chars[*position]) {
        *position += 1;
    }
    let name: String = chars[start..*position].iter().collect();
    if name.is_empty() {
        return Err("bad substitution: empty variable name in ${}".into());
    }
    note(&name);
    let value = lookup(&name);
    match chars.get(*position) {
        Some('}') => {
            *position += 1;
            Ok(value.unwrap_or_default())
        }
        Some(':') | Some('-') | Some('+') | Some('?') => {
            let colon = chars[*position] == ':';
            if colon {
                *position += 1;
            }
            let Some(&operator) = chars.get(*position) else {
                return Err(format!("missing '}}' after ${{{name}"));
            };
            *position += 1;
            let word = expand_until(chars, position, Some('}'), lookup, escape, used)?;
            *position += 1;
            let set = match &value {
                Some(value) => !colon || !value.is_empty(),
                None => false,
            };
            match operator {
                '-' => Ok(if set { value.unwrap_or_default() } else { word }),
                '+' => Ok(if set { word } else { String::new() }),
                '?' if set => Ok(value.unwrap_or_default()),
                '?' => Err(format!(
                    "{name}: {}",
                    if word.is_empty() { "is not set" } else { &word }
                )),
                other => Err(format!("unsupported modifier '{other}' in ${{{name}...}}")),
            }
        }
        _ => Err(format!("bad substitution in ${{{name}...}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Vec<String> {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        base_images(text, &args, target)
            .unwrap_or_else(|error| panic!("{error:?}"))
            .into_iter()
            .map(|image| image.image)
            .collect()
    }

    #[test]
    fn multi_stage_skips_stage_references_and_scratch() {
        let text = "FROM golang:1.22 AS Builder\nRUN go build\nFROM builder AS test\nFROM scratch\nCOPY --from=builder /app /app\nCOPY --from=0 /x /x\nCOPY --from=busybox:1.36 /bin/busybox /bin/\n";
        assert_eq!(images(text, &[], None), ["golang:1.22", "busybox:1.36"]);
    }

    #[test]
    fn global_args_and_build_args_substitute() {
        let text = "ARG BASE=alpine\nARG TAG=3.20\nARG FULL=${BASE}:${TAG}\nFROM ${FULL}\nFROM $BASE:${MISSING:-edge} AS b\nFROM ${BASE}:${TAG:+pinned}\n";
        assert_eq!(
            images(text, &[], None),
            ["alpine:3.20", "alpine:edge", "alpine:pinned"]
        );
        assert_eq!(images(text, &[("TAG", "3.19")], None)[0], "alpine:3.19");
        assert_eq!(
            images(text, &[("BASE", "debian")], None)[2],
            "debian:pinned"
        );
    }

    #[test]
    fn build_args_without_arg_declaration_do_not_reach_from() {
        let error = base_images(
            "FROM ${IMG}\n",
            &[("IMG".into(), "x".into())].into_iter().collect(),
            None,
        )
        .unwrap_err();
        assert_eq!(error.line, Some(1));
        assert!(
            error.message.contains("not an image reference"),
            "{}",
            error.message
        );
    }

    #[test]
    fn platform_flag_is_kept() {
        let text = "ARG PLATFORM=linux/arm64\nFROM --platform=$PLATFORM alpine:3 AS a\nFROM --platform=$BUILDPLATFORM debian:12\n";
        let found = base_images(text, &IndexMap::new(), None).unwrap();
        assert_eq!(found[0].platform.as_deref(), Some("linux/arm64"));
        assert_eq!(found[1].platform, None);
        assert_eq!(found[1].line, 3);
    }

    #[test]
    fn target_limits_stages() {
        let text = "FROM alpine:3 AS base\nFROM base AS dev\nFROM node:22 AS prod\n";
        assert_eq!(images(text, &[], Some("dev")), ["alpine:3"]);
        assert_eq!(images(text, &[], Some("PROD")), ["alpine:3", "node:22"]);
        let error = base_images(text, &IndexMap::new(), Some("nope")).unwrap_err();
        assert!(error.message.contains("\"nope\""), "{}", error.message);
    }

    #[test]
    fn heredocs_continuations_lower_case_and_directives() {
        let text = "# syntax=docker/dockerfile:1\n# escape=`\nfrom `\n  debian:12 as base\nrun <<EOF\necho FROM nothing:here\nEOF\nFROM alpine:3.20\ncopy --from=base / /\n";
        assert_eq!(images(text, &[], None), ["debian:12", "alpine:3.20"]);
    }

    #[test]
    fn syntax_errors_have_lines() {
        let error = base_images("FROM alpine\nRUN <<EOF\n", &IndexMap::new(), None).unwrap_err();
        assert!(error.line.is_some(), "{error:?}");
        let error = base_images("RUN echo\n", &IndexMap::new(), None).unwrap_err();
        assert!(!error.message.is_empty());
    }

    #[test]
    fn args_used_are_recorded() {
        let text = "ARG IMAGE\nFROM ${IMAGE}\n";
        let args = [("IMAGE".to_string(), "traefik:v3.6".to_string())]
            .into_iter()
            .collect();
        let found = base_images(text, &args, None).unwrap();
        assert_eq!(found[0].image, "traefik:v3.6");
        assert_eq!(found[0].args_used, ["IMAGE"]);
    }

    #[test]
    fn quoted_arg_words() {
        assert_eq!(split_words("A=\"x y\" B='1' C"), ["A=x y", "B=1", "C"]);
    }
}
