//! `.dockerignore` files with Docker's own matching rules.
//!
//! Written by hand rather than with the `ignore` crate, because that crate
//! applies gitignore rules, which differ from Docker's in ways that change
//! what reaches the engine: in Docker `foo` and `*.md` only match at the
//! context root (gitignore matches them at any depth), the last matching line
//! wins even against an earlier `!` exception, and anchoring with `/` does not
//! change that.
//!
//! This is a port of moby/patternmatcher (the package the docker CLI uses) and
//! of its `ignorefile.ReadAll`:
//!
//! - a line starting with `#` is a comment (only at the very start: `  #x` is
//!   a pattern); lines are trimmed; blank lines are skipped; a leading `!`
//!   makes an exception; patterns are cleaned like Go's `filepath.Clean` and
//!   lose a leading `/`;
//! - `*` and `?` do not cross `/`; `**` matches any number of directories;
//!   `[...]` classes and `\` escapes work as in Go's `filepath.Match`;
//! - a pattern matches a path when it matches the path or one of its parent
//!   directories, and the last matching pattern decides.

use std::path::{Path, PathBuf};

use regex::Regex;

/// A `.dockerignore` line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct DockerIgnoreError {
    pub path: PathBuf,
    /// 1-based line number (0 when the file itself could not be read).
    pub line: usize,
    pub message: String,
}

/// The compiled patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// Which patterns matched a directory, so its children need not test the
/// directory's ancestors again (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exclusion: bool,
    matcher: Matcher,
}

/// patternmatcher's fast paths, chosen exactly as it chooses them.
#[derive(Debug, Clone)]
enum Matcher {
    Exact,
    /// `prefix**`: the path starts with `prefix`.
    Prefix(String),
    /// `**suffix`: the path ends with `suffix`, or `**/name` is `name`.
    Suffix(String),
    Regex(Regex),
}

impl DockerIgnore {
    /// Reads `<context_dir>/.dockerignore`; a missing file ignores nothing.
    pub fn read(context_dir: &Path) -> Result<Self, DockerIgnoreError> {
        let path = context_dir.join(".dockerignore");
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&path, &String::from_utf8_lossy(&bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(DockerIgnoreError {
                path,
                line: 0,
                message: format!("cannot read: {error}; fix its permissions or remove it"),
            }),
        }
    }

    /// Parses the text of a `.dockerignore` file (`path` is used in messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, DockerIgnoreError> {
        let mut ignore = Self::default();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = if index == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if let Some(pattern) = normalize_line(line) {
                ignore.push(&pattern).map_err(|message| DockerIgnoreError {
                    path: path.to_path_buf(),
                    line: line_number,
                    message,
                })?;
            }
        }
        Ok(ignore)
    }

    /// Appends one pattern in `.dockerignore` syntax (`!` for an exception),
    /// as patternmatcher's `New` reads it.
    pub fn push(&mut self, pattern: &str) -> Result<(), String> {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Ok(());
        }
        let pattern = clean(pattern);
        let (exclusion, text) = match pattern.strip_prefix('!') {
            Some("") => {
                return Err(
                    "illegal exclusion pattern \"!\": write the path to keep after the `!`"
                        .to_string(),
                );
            }
            Some(text) => (true, text.to_string()),
            None => (false, pattern),
        };
        validate_glob(&text)
            .map_err(|reason| format!("syntax error in pattern {text:?}: {reason}"))?;
        let matcher = compile(&text)
            .map_err(|reason| format!("syntax error in pattern {text:?}: {reason}"))?;
        self.patterns.push(Pattern {
            text,
            exclusion,
            matcher,
        });
        Ok(())
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern is an exception (`!`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|pattern| pattern.exclusion)
    }

    /// The cleaned text of every exception pattern, without the `!`.
    pub fn exceptions(&self) -> impl Iterator<Item = &str> {
        self.patterns
            .iter()
            .filter(|pattern| pattern.exclusion)
            .map(|pattern| pattern.text.as_str())
    }

    /// Whether `path` (relative to the context, `/`-separated) is ignored,
    /// testing its parent directories too (patternmatcher's
    /// `MatchesOrParentMatches`).
    pub fn is_ignored(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." {
            return false;
        }
        self.matches_using_parent_results(&path, &MatchInfo::default())
            .0
    }

    /// patternmatcher's `MatchesUsingParentResults`: whether `path` is
    /// ignored, given what matched its parent directory (an empty
    /// [`MatchInfo`] for entries of the context root, or to test every parent).
    /// Returns the information to pass for the entries of `path`.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let parent_matched = &parent.parent_matched;
        let parent_known =
            parent_matched.len() == self.patterns.len() && !parent_matched.is_empty();
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut is_match = parent_known && parent_matched[index];
            if !is_match {
                // An inclusion cannot change an already ignored path, nor an
                // exception a kept one.
                if pattern.exclusion != matched {
                    continue;
                }
                is_match = pattern.matches(path);
                if !is_match && !parent_known {
                    is_match = parent_directories(path).any(|parent| pattern.matches(parent));
                }
            }
            info.parent_matched[index] = is_match;
            if is_match {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }
}

/// `a/b/c` → `a`, `a/b` (Go's `filepath.Dir` split into its prefixes).
fn parent_directories(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(index, _)| &path[..index])
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|name| path == name)
            }
            Matcher::Regex(regex) => regex.is_match(path),
        }
    }
}

/// ignorefile.ReadAll's treatment of one line; `None` for comments and blanks.
fn normalize_line(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let mut pattern = line.trim();
    if pattern.is_empty() {
        return None;
    }
    let exception = pattern.starts_with('!');
    if exception {
        pattern = pattern[1..].trim();
    }
    let mut cleaned = String::new();
    if !pattern.is_empty() {
        cleaned = clean(pattern);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
    }
    Some(if exception {
        format!("!{cleaned}")
    } else {
        cleaned
    })
}

/// Go's `path.Clean`: one `/` between elements, no `.` elements, `..`
/// resolved lexically, no trailing `/`; `.` for an empty result.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The syntax check patternmatcher borrows from Go's `filepath.Match`:
/// well-formed `[...]` classes and no dangling `\`.
fn validate_glob(pattern: &str) -> Result<(), String> {
    let mut characters = pattern.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                characters
                    .next()
                    .ok_or_else(|| "a trailing `\\` escapes nothing".to_string())?;
            }
            '[' => {
                let unclosed = || "unclosed or malformed `[...]` class".to_string();
                characters.next_if_eq(&'^');
                let mut ranges = 0;
                loop {
                    if ranges > 0 && characters.next_if_eq(&']').is_some() {
                        break;
                    }
                    class_character(&mut characters).ok_or_else(unclosed)?;
                    if characters.next_if_eq(&'-').is_some() {
                        class_character(&mut characters).ok_or_else(unclosed)?;
                    }
                    ranges += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Go's `getEsc`: one (possibly escaped) class character, which must be
/// followed by more pattern text.
fn class_character(characters: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let first = characters.next_if(|&character| character != '-' && character != ']')?;
    let character = if first == '\\' {
        characters.next()?
    } else {
        first
    };
    characters.peek()?;
    Some(character)
}

/// patternmatcher's `compile`: picks the fast path or builds the regular
/// expression Docker builds (Go syntax, made acceptable to the `regex` crate).
fn compile(pattern: &str) -> Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut regex = String::from("^");
    let mut kind = Kind::Exact;
    let mut characters = pattern.chars().peekable();
    let mut first = true;
    while let Some(character) = characters.next() {
        match character {
            '*' if characters.peek() == Some(&'*') => {
                characters.next();
                characters.next_if_eq(&'/');
                if characters.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                regex.push('\\');
                regex.push(character);
            }
            '\\' => match characters.next() {
                Some(escaped) => {
                    regex.push('\\');
                    regex.push(escaped);
                    kind = Kind::Regex;
                }
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(character);
                kind = Kind::Regex;
            }
            _ => regex.push(character),
        }
        first = false;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_string()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_string()),
        Kind::Regex => {
            regex.push('$');
            let regex = Regex::new(&go_regex_to_rust(&regex)).map_err(|error| {
                error
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_string()
            })?;
            Matcher::Regex(regex)
        }
    })
}

/// Go's regexp treats `[`, `&` and `~` inside a class as plain characters;
/// the `regex` crate reads them as nested classes and set operations, so they
/// are escaped there. POSIX classes such as `[:alpha:]` are kept.
fn go_regex_to_rust(go: &str) -> String {
    let mut rust = String::with_capacity(go.len());
    let mut characters = go.chars().peekable();
    let mut in_class = false;
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                rust.push('\\');
                if let Some(escaped) = characters.next() {
                    rust.push(escaped);
                }
            }
            '[' if !in_class => {
                in_class = true;
                rust.push('[');
                if characters.next_if_eq(&'^').is_some() {
                    rust.push('^');
                }
                if characters.next_if_eq(&']').is_some() {
                    rust.push_str("\\]");
                }
            }
            '[' if characters.peek() == Some(&':') => {
                rust.push('[');
                for posix in characters.by_ref() {
                    rust.push(posix);
                    if posix == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' if in_class => {
                rust.push('\\');
                rust.push(character);
            }
            ']' if in_class => {
                in_class = false;
                rust.push(']');
            }
            ']' => rust.push_str("\\]"),
            _ => rust.push(character),
        }
    }
    rust
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> DockerIgnore {
        let mut ignore = DockerIgnore::default();
        for pattern in patterns {
            ignore
                .push(pattern)
                .unwrap_or_else(|error| panic!("{pattern:?}: {error}"));
        }
        ignore
    }

    /// The walk's way of matching: each parent directory first, passing results down.
    fn ignored_walking(ignore: &DockerIgnore, path: &str) -> bool {
        let mut info = MatchInfo::default();
        for parent in parent_directories(path) {
            info = ignore.matches_using_parent_results(parent, &info).1;
        }
        ignore.matches_using_parent_results(path, &info).0
    }

    #[test]
    fn patternmatcher_single_pattern_cases() {
        // From moby/patternmatcher's TestMatches (true = matches the path or a parent).
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
            // From the filepath.Match table patternmatcher reuses.
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for (pattern, path, expected) in cases {
            let ignore = matcher(&[pattern]);
            assert_eq!(
                ignore.is_ignored(path),
                *expected,
                "{pattern:?} on {path:?}"
            );
            assert_eq!(
                ignored_walking(&ignore, &clean(path)),
                *expected,
                "{pattern:?} on {path:?} while walking"
            );
        }
    }

    #[test]
    fn patternmatcher_multi_pattern_cases() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (
                &["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
                true,
            ),
            (
                &[
                    "**",
                    "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                ],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            (
                &["**", "!dist/*.whl"],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["*.go"], ".", false),
            (&[], "any/path/there", false),
        ];
        for (patterns, path, expected) in cases {
            let ignore = matcher(patterns);
            assert_eq!(
                ignore.is_ignored(path),
                *expected,
                "{patterns:?} on {path:?}"
            );
            assert_eq!(
                ignored_walking(&ignore, path),
                *expected,
                "{patterns:?} on {path:?} walking"
            );
        }
    }

    #[test]
    fn differs_from_gitignore() {
        // 1. Unanchored names and globs match only at the context root.
        let names = matcher(&["foo", "*.md"]);
        assert!(names.is_ignored("foo"));
        assert!(!names.is_ignored("a/foo"));
        assert!(names.is_ignored("README.md"));
        assert!(!names.is_ignored("docs/x.md"));
        // 2. The last match wins, even over an earlier exception.
        let last_wins = matcher(&["!foo/keep.txt", "foo"]);
        assert!(last_wins.is_ignored("foo/keep.txt"));
        // 3. Anchoring with `/` changes neither.
        let anchored =
            DockerIgnore::parse(Path::new(".dockerignore"), "!/foo/keep.txt\n/foo\n").unwrap();
        assert!(anchored.is_ignored("foo/keep.txt"));
        assert!(!anchored.is_ignored("a/foo"));
    }

    #[test]
    fn reads_files_like_the_docker_cli() {
        let text = "\u{feff}# comment\n\n  node_modules  \n  # not a comment\n!  keep.md\n/abs/path/\n./dot/../x//y/\n!\t/anchored\n*.log\n";
        let ignore = DockerIgnore::parse(Path::new("ctx/.dockerignore"), text).unwrap();
        let texts: Vec<(bool, &str)> = ignore
            .patterns
            .iter()
            .map(|pattern| (pattern.exclusion, pattern.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                (false, "node_modules"),
                (false, "# not a comment"),
                (true, "keep.md"),
                (false, "abs/path"),
                (false, "x/y"),
                (true, "anchored"),
                (false, "*.log"),
            ]
        );
        assert!(ignore.is_ignored("node_modules/pkg/index.js"));
        assert!(ignore.is_ignored("abs/path/file"));
        assert!(!ignore.is_ignored("keep.md"));
        assert!(ignore.is_ignored("debug.log"));
        assert!(!ignore.is_ignored("logs/debug.log"));
        assert!(ignore.has_exceptions());
        assert_eq!(
            ignore.exceptions().collect::<Vec<_>>(),
            ["keep.md", "anchored"]
        );
    }

    #[test]
    fn clean_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("./a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/../..", ".."),
            ("../../a", "../../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("//a//", "/a"),
            ("a/b/../../../c", "../c"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean(input), expected, "{input:?}");
        }
    }

    #[test]
    fn malformed_patterns_name_the_line() {
        let cases = [
            "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "!",
        ];
        for pattern in cases {
            let text = format!("ok\n{pattern}\n");
            let error = DockerIgnore::parse(Path::new("ctx/.dockerignore"), &text)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(error.line, 2, "{pattern:?}");
            assert!(
                error.to_string().starts_with("ctx/.dockerignore:2: "),
                "{error}"
            );
            if pattern == "!" {
                assert!(
                    error.message.contains("illegal exclusion pattern"),
                    "{error}"
                );
            } else {
                assert!(error.message.contains("syntax error in pattern"), "{error}");
            }
        }
    }

    #[test]
    fn go_regex_class_characters_are_literal() {
        let ignore = matcher(&["a[&~[]b", "c[[:digit:]]d", "x]y"]);
        assert!(ignore.is_ignored("a&b"));
        assert!(ignore.is_ignored("a~b"));
        assert!(ignore.is_ignored("a[b"));
        assert!(!ignore.is_ignored("axb"));
        assert!(ignore.is_ignored("c7d"));
        assert!(!ignore.is_ignored("cxd"));
        assert!(ignore.is_ignored("x]y"));
    }
}
