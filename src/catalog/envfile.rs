//! Parser for Compose `.env` files (`.env-dist`, `.env_<context>`), written by
//! hand because dotenvy differs from Compose (no `${VAR:-default}`, no unquoted
//! spaces).
//!
//! It follows compose-go's `dotenv` package (v2.9.1, inside Docker Compose
//! v2.40.3), checked against the real binary:
//!
//! - `KEY=VALUE`, `KEY: VALUE`, `export KEY=VALUE`; blank lines and `#` comment
//!   lines are skipped; a line holding only `KEY` copies `KEY` from the lookup.
//! - Unquoted values end at the line end, lose a ` #` comment and trailing
//!   white space, and are interpolated.
//! - Single-quoted values are literal (only `\'` is unescaped) and may span lines.
//! - Double-quoted values may span lines, understand `\n`, `\t`, `\"`, `\\`,
//!   `\$`, `\0NNN` and friends, and are interpolated.
//! - Interpolation looks a name up in `lookup` first (Compose gives the process
//!   environment priority), then in the values defined so far.
//!
//! Errors carry the 1-based line where the faulty entry starts. (Compose
//! counts some newlines twice in its messages; bunker reports the real line.)

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::interpolate::interpolate;

/// A syntax or interpolation error in an env file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct EnvFileError {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Parses env-file `text` (read from `path`, used in messages). Values are
/// interpolated as Compose does: with `lookup` first (Compose puts the process
/// environment first), then with the variables defined earlier in the file.
///
/// To layer several files the way `docker compose --env-file a --env-file b`
/// does, use [`parse_env_file_over`] or [`read_env_files`]: Compose lets a
/// file's own earlier values win over earlier files' values, which a single
/// `lookup` cannot express.
pub fn parse_env_file(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    parse_env_file_over(path, text, IndexMap::new(), lookup)
}

/// Parses `text` on top of `base` (the values of earlier env files) and returns
/// `base` updated with this file's entries. Interpolation looks names up in
/// `process_environment` first, then in `base` as updated so far.
pub fn parse_env_file_over(
    path: &Path,
    text: &str,
    base: IndexMap<String, String>,
    process_environment: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let mut parser = Parser {
        path,
        text,
        position: 0,
        line: 1,
        values: base,
        lookup: process_environment,
    };
    parser.parse()?;
    Ok(parser.values)
}

/// Reads and parses the env file at `path`.
pub fn read_env_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let text = read_text(path)?;
    parse_env_file(path, &text, lookup)
}

/// Reads several env files in order, later files overriding earlier ones, as
/// `docker compose --env-file first --env-file second` does.
pub fn read_env_files(
    paths: &[PathBuf],
    process_environment: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let mut values = IndexMap::new();
    for path in paths {
        let text = read_text(path)?;
        values = parse_env_file_over(path, &text, values, process_environment)?;
    }
    Ok(values)
}

fn read_text(path: &Path) -> Result<String, EnvFileError> {
    std::fs::read_to_string(path).map_err(|error| EnvFileError {
        path: path.to_path_buf(),
        line: 0,
        message: format!(
            "cannot read: {error}; check that the file exists and is readable UTF-8 text"
        ),
    })
}

/// Go's `unicode.IsSpace` minus the line break (compose-go's `isSpace`).
fn is_inline_space(character: char) -> bool {
    matches!(
        character,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// Characters compose-go accepts in a key.
fn is_key_character(character: char) -> bool {
    matches!(character, '_' | '.' | '-' | '[' | ']') || character.is_alphanumeric()
}

/// How a key ends.
enum KeyEnd {
    /// `=` or `:`: a value follows.
    Value,
    /// A line break: the value is inherited from the lookup.
    Inherited,
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
    position: usize,
    line: usize,
    values: IndexMap<String, String>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.position..]
    }

    fn error(&self, line: usize, message: String) -> EnvFileError {
        EnvFileError {
            path: self.path.to_path_buf(),
            line,
            message,
        }
    }

    /// Moves past `length` bytes, counting the line breaks in them.
    fn advance(&mut self, length: usize) {
        let skipped = &self.text[self.position..self.position + length];
        self.line += skipped.bytes().filter(|&byte| byte == b'\n').count();
        self.position += length;
    }

    fn skip_while(&mut self, predicate: impl Fn(char) -> bool) {
        let length = self
            .rest()
            .find(|character: char| !predicate(character))
            .unwrap_or(self.rest().len());
        self.advance(length);
    }

    fn parse(&mut self) -> Result<(), EnvFileError> {
        while self.skip_to_statement() {
            self.statement()?;
        }
        Ok(())
    }

    /// Skips white space and comment lines; false at the end of the text.
    fn skip_to_statement(&mut self) -> bool {
        loop {
            self.skip_while(char::is_whitespace);
            if self.rest().is_empty() {
                return false;
            }
            if !self.rest().starts_with('#') {
                return true;
            }
            self.skip_while(|character| character != '\n');
        }
    }

    fn statement(&mut self) -> Result<(), EnvFileError> {
        let line = self.line;
        self.skip_export_prefix();
        let Some((key, end)) = self.key(line)? else {
            // Trailing text without `=`, `:` or a line break: Compose stores it
            // under an empty key, which nothing can reference.
            self.position = self.text.len();
            return Ok(());
        };
        if key.contains(' ') {
            return Err(self.error(
                line,
                format!("key {key:?} cannot contain a space; write KEY=VALUE"),
            ));
        }
        self.skip_while(is_inline_space);
        let value = match end {
            KeyEnd::Inherited => {
                if let Some(value) = (self.lookup)(&key) {
                    self.store(key, value);
                }
                return Ok(());
            }
            KeyEnd::Value => self.value(line)?,
        };
        self.store(key, value);
        Ok(())
    }

    fn store(&mut self, key: String, value: String) {
        if !key.is_empty() {
            self.values.insert(key, value);
        }
    }

    /// `export` followed by white space (Go's `\s`, line breaks included).
    fn skip_export_prefix(&mut self) {
        let rest = self.rest();
        if rest.starts_with("export") && rest[6..].starts_with(['\t', '\n', '\u{c}', '\r', ' ']) {
            self.advance(6);
            self.skip_while(is_inline_space);
        }
    }

    /// Reads the key and its terminator; `None` when the text ends first.
    fn key(&mut self, line: usize) -> Result<Option<(String, KeyEnd)>, EnvFileError> {
        let rest = self.rest();
        for (index, character) in rest.char_indices() {
            if is_inline_space(character) {
                continue;
            }
            let end = match character {
                '=' | ':' => KeyEnd::Value,
                '\n' => KeyEnd::Inherited,
                _ if is_key_character(character) => continue,
                _ => {
                    let statement = rest.lines().next().unwrap_or_default();
                    return Err(self.error(
                        line,
                        format!(
                            "unexpected character {character:?} in variable name {statement:?}; \
                             keys may hold letters, digits, `_`, `.`, `-`, `[` and `]`"
                        ),
                    ));
                }
            };
            let key = rest[..index].trim_end().to_string();
            self.advance(index + 1);
            return Ok(Some((key, end)));
        }
        Ok(None)
    }

    fn value(&mut self, line: usize) -> Result<String, EnvFileError> {
        match self.rest().chars().next() {
            Some(quote @ ('"' | '\'')) => self.quoted_value(line, quote),
            _ => self.unquoted_value(line),
        }
    }

    fn unquoted_value(&mut self, line: usize) -> Result<String, EnvFileError> {
        let rest = self.rest();
        let (raw, consumed) = match rest.find('\n') {
            Some(end) => (&rest[..end], end + 1),
            None => (rest, rest.len()),
        };
        let without_comment = raw.split_once(" #").map_or(raw, |(value, _)| value);
        let value = without_comment.trim_end().to_string();
        self.advance(consumed);
        self.interpolate(line, &value)
    }

    fn quoted_value(&mut self, line: usize, quote: char) -> Result<String, EnvFileError> {
        let rest = self.rest();
        let mut raw = String::new();
        let mut escaped = false;
        let mut closing = None;
        for (index, character) in rest.char_indices().skip(1) {
            if escaped {
                escaped = false;
                // `\<quote>` drops its backslash; any other escape keeps it.
                if character != quote {
                    raw.push('\\');
                }
                raw.push(character);
                continue;
            }
            if character == '\\' {
                escaped = true;
            } else if character == quote {
                closing = Some(index);
                break;
            } else {
                raw.push(character);
            }
        }
        let Some(closing) = closing else {
            let start = rest.lines().next().unwrap_or_default();
            return Err(self.error(
                line,
                format!("unterminated quoted value {start}; add the closing {quote} quote"),
            ));
        };
        self.advance(closing + 1);
        if quote == '"' {
            self.interpolate(line, &expand_escapes(&raw))
        } else {
            Ok(raw)
        }
    }

    fn interpolate(&self, line: usize, value: &str) -> Result<String, EnvFileError> {
        let lookup = |name: &str| (self.lookup)(name).or_else(|| self.values.get(name).cloned());
        interpolate(value, &lookup)
            .map(|interpolated| interpolated.value)
            .map_err(|error| self.error(line, error.to_string()))
    }
}

/// Expands the escape sequences of a double-quoted value, as compose-go does:
/// `\a \b \f \n \r \t \v \" \\`, `\0` followed by up to three digits (octal),
/// and `\$`, which becomes `$$` so that interpolation leaves a literal `$`.
/// Anything else keeps its backslash.
fn expand_escapes(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut characters = text.char_indices().peekable();
    while let Some((index, character)) = characters.next() {
        if character != '\\' {
            output.push(character);
            continue;
        }
        let Some(&(_, next)) = characters.peek() else {
            output.push('\\');
            continue;
        };
        let simple = match next {
            'a' => Some("\u{7}"),
            'b' => Some("\u{8}"),
            'f' => Some("\u{c}"),
            'n' => Some("\n"),
            'r' => Some("\r"),
            't' => Some("\t"),
            'v' => Some("\u{b}"),
            '"' => Some("\""),
            '\\' => Some("\\"),
            '$' => Some("$$"),
            _ => None,
        };
        if let Some(replacement) = simple {
            characters.next();
            output.push_str(replacement);
        } else if next == '0' {
            characters.next();
            let digits: String = text[index + 2..]
                .chars()
                .take_while(char::is_ascii_digit)
                .take(3)
                .collect();
            for _ in 0..digits.len() {
                characters.next();
            }
            output.push_str(&octal_escape(&digits));
        } else {
            // Not an escape: the backslash stays and the next character is
            // read normally.
            output.push('\\');
        }
    }
    output
}

/// `\0` plus `digits` (up to three ASCII digits): Go's `UnquoteChar` on
/// `\<digits>`, which needs exactly three octal digits worth at most 255;
/// otherwise the text stays as `\<digits>`.
fn octal_escape(digits: &str) -> String {
    let decoded = (digits.len() == 3)
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|&value| value <= 255)
        .and_then(char::from_u32);
    match decoded {
        Some(character) => character.to_string(),
        None => format!("\\{digits}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process_environment(name: &str) -> Option<String> {
        match name {
            "PROC" => Some("proc".into()),
            "SHADOW" => Some("from-process".into()),
            "EMPTY_PROC" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<IndexMap<String, String>, EnvFileError> {
        parse_env_file(Path::new("test.env"), text, &process_environment)
    }

    fn pairs(map: &IndexMap<String, String>) -> Vec<(&str, &str)> {
        map.iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }

    #[test]
    fn entries_match_compose() {
        // Each expectation was checked against docker-compose v2.40.3 (see
        // tests/envfile_parity.rs, which repeats them against the binary).
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("\n\n  \n", &[]),
            ("# only a comment\n   # indented comment", &[]),
            ("A=1", &[("A", "1")]),
            ("A=1\nB=2\n", &[("A", "1"), ("B", "2")]),
            (
                "A=1\r\nB=\"q\"\r\nC=c \r\n",
                &[("A", "1"), ("B", "q"), ("C", "c")],
            ),
            ("export A=1\nexport\tB=2\n", &[("A", "1"), ("B", "2")]),
            (
                "exportB=2\nexport=3\n",
                &[("exportB", "2"), ("export", "3")],
            ),
            (
                "  F = f\nG: g\nH :h\n",
                &[("F", "f"), ("G", "g"), ("H", "h")],
            ),
            ("D= spaced value  \n", &[("D", "spaced value")]),
            (
                "A=#x\nB=a #c\nC=a#c\nD=x\t#c\n",
                &[("A", "#x"), ("B", "a"), ("C", "a#c"), ("D", "x\t#c")],
            ),
            ("A=\nB=  \nC=\"\" # c\n", &[("A", ""), ("B", ""), ("C", "")]),
            (
                "A.b=1\nC[0]=2\nD-e=3\n",
                &[("A.b", "1"), ("C[0]", "2"), ("D-e", "3")],
            ),
            ("A=x\n\n# c\nB=y\n", &[("A", "x"), ("B", "y")]),
            ("A=\"x\" y=z\n", &[("A", "x"), ("y", "z")]),
            ("A='a\\nb $PROC'\n", &[("A", "a\\nb $PROC")]),
            (
                "A='it\\'s'\nB='[\\\\][\\q]'\n",
                &[("A", "it's"), ("B", "[\\\\][\\q]")],
            ),
            (
                "A='multi\nline'\nB=2\n",
                &[("A", "multi\nline"), ("B", "2")],
            ),
            (
                "A=\"line1\nline2\"\nB=after\n",
                &[("A", "line1\nline2"), ("B", "after")],
            ),
            (
                "A=\"a\\nb\\tc\\\\d\\\"e\\$f\\x\"\n",
                &[("A", "a\nb\tc\\d\"e$f\\x")],
            ),
            (
                "A=\"a\\ab\\bc\\fd\\re\\vg\"\n",
                &[("A", "a\u{7}b\u{8}c\u{c}d\re\u{b}g")],
            ),
            (
                "A=\"[\\0][\\012][\\08][\\0777][\\0377][\\c][\\01011][\\\\n][\\\\\\\"][\\q]\"\n",
                &[(
                    "A",
                    "[\\][\\12][\\8][\\777][\u{ff}][\\c][A1][\\n][\\\"][\\q]",
                )],
            ),
            (
                "A=$PROC\nB=${PROC}-x\nC=\"$PROC\"\nD='$PROC'\n",
                &[
                    ("A", "proc"),
                    ("B", "proc-x"),
                    ("C", "proc"),
                    ("D", "$PROC"),
                ],
            ),
            (
                "A=$$1\nB=\"$$1\"\nC='$$1'\nD=\\$x\n",
                &[("A", "$1"), ("B", "$1"), ("C", "$$1"), ("D", "\\")],
            ),
            (
                "A=${MISSING:-dflt}\nB=${EMPTY_PROC-dflt}\n",
                &[("A", "dflt"), ("B", "")],
            ),
            ("A=\"${B:-x\\\"y}\"\n", &[("A", "x\"y")]),
            // Earlier entries are visible to later ones, but not the reverse.
            (
                "A=one\nB=${A}/two\nC=${LATER}\nLATER=1\n",
                &[("A", "one"), ("B", "one/two"), ("C", ""), ("LATER", "1")],
            ),
            // The process environment wins over the file's own values.
            (
                "SHADOW=file\nB=${SHADOW}\n",
                &[("SHADOW", "file"), ("B", "from-process")],
            ),
            // Inherited keys copy the lookup, or are left out.
            ("PROC\nNOPE\nA=1\n", &[("PROC", "proc"), ("A", "1")]),
            ("A=1\nTRAILING", &[("A", "1")]),
            ("A=1\nA=2\n", &[("A", "2")]),
            ("A=héllo wörld\n", &[("A", "héllo wörld")]),
        ];
        for (text, expected) in cases {
            let parsed = parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"));
            assert_eq!(pairs(&parsed), *expected, "text {text:?}");
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "A=1\nB=\"open\n",
                2,
                "unterminated quoted value \"open; add the closing \" quote",
            ),
            (
                "A='x\n",
                1,
                "unterminated quoted value 'x; add the closing ' quote",
            ),
            (
                "A B=x\n",
                1,
                "key \"A B\" cannot contain a space; write KEY=VALUE",
            ),
            (
                "A='x'\"y\"=z\n",
                1,
                "unexpected character '\"' in variable name \"\\\"y\\\"=z\"",
            ),
            (
                "A=ok\n\nB@=x\n",
                3,
                "unexpected character '@' in variable name \"B@=x\"",
            ),
            ("A=ok\nB=${\n", 2, "invalid interpolation format for \"${\""),
            (
                "A=\"x\ny\"\n\nB=\"${X:?boom}\"\n",
                4,
                "required variable X is missing a value: boom",
            ),
            (
                "# c\nA=${X?}\n",
                2,
                "required variable X is missing a value",
            ),
        ];
        for (text, line, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.line, *line, "text {text:?}: {error}");
            assert_eq!(error.path, Path::new("test.env"));
            assert!(error.message.starts_with(message), "text {text:?}: {error}");
            assert!(
                error.to_string().starts_with(&format!("test.env:{line}: ")),
                "{error}"
            );
        }
    }

    #[test]
    fn layered_files_follow_compose_priority() {
        let first = parse_env_file_over(
            Path::new("first.env"),
            "A=one\nX=1\nSHADOW=file\n",
            IndexMap::new(),
            &process_environment,
        )
        .unwrap();
        let layered = parse_env_file_over(
            Path::new("second.env"),
            "B=${A}\nA=two\nC=${A}\nX\nD=${SHADOW}\n",
            first,
            &process_environment,
        )
        .unwrap();
        assert_eq!(
            pairs(&layered),
            [
                ("A", "two"),
                ("X", "1"),
                ("SHADOW", "file"),
                ("B", "one"),
                ("C", "two"),
                ("D", "from-process"),
            ]
        );
    }

    #[test]
    fn read_env_files_reads_in_order_and_names_missing_files() {
        let directory = tempfile::tempdir().unwrap();
        let first = directory.path().join(".env-dist");
        let second = directory.path().join(".env_prod");
        std::fs::write(&first, "TAG=1.0\nNAME=app\n").unwrap();
        std::fs::write(&second, "TAG=2.0\nIMAGE=${NAME}:${TAG}\n").unwrap();
        let values =
            read_env_files(&[first.clone(), second.clone()], &process_environment).unwrap();
        assert_eq!(
            pairs(&values),
            [("TAG", "2.0"), ("NAME", "app"), ("IMAGE", "app:2.0")]
        );
        assert_eq!(
            pairs(&read_env_file(&first, &process_environment).unwrap()),
            [("TAG", "1.0"), ("NAME", "app")]
        );

        let missing = directory.path().join("missing.env");
        let error = read_env_files(&[first, missing.clone()], &process_environment).unwrap_err();
        assert_eq!(error.path, missing);
        assert!(error.message.starts_with("cannot read: "), "{error}");
    }
}
