//! Docker Compose variable interpolation, written by hand because no maintained
//! crate implements Compose's exact rules.
//!
//! This is a faithful port of compose-go's `template` package (v2.9.1, the one
//! inside Docker Compose v2.40.3), quirks included, so that bunker resolves
//! image names exactly as `docker compose config` does:
//!
//! - `$$` is a literal `$`; a `$` followed by neither `$`, a name nor `{` stays
//!   as it is (`a$ b$1` is unchanged).
//! - `$NAME` and `${NAME}`, with `NAME` matching `[_a-zA-Z][_a-zA-Z0-9]*`; an
//!   unset variable becomes the empty string.
//! - `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`,
//!   `${NAME?message}`, `${NAME:+alternate}` and `${NAME+alternate}`. The text
//!   after the modifier is itself interpolated, always, before the variable is
//!   looked up (so an error inside an unused default is still an error).
//! - A `${...}` with a modifier extends to the last `}` on its line, then is cut
//!   at the brace matching its `{` (counting every `{`, and skipping the
//!   character after each `{`, exactly as compose-go does); what follows the cut
//!   is interpolated on its own and appended.
//! - Anything else starting with `${` is a syntax error.

use std::fmt;

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    /// The text with every variable substituted and `$$` turned into `$`.
    pub value: String,
    /// Names of the variables the text referenced, in order of appearance, without duplicates
    /// (including ones inside defaults that were evaluated).
    pub variables: Vec<String>,
}

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${VAR:?message}` with VAR unset or empty, or `${VAR?message}` with VAR unset.
    #[error("{}", RequiredMessage { variable, message })]
    Required { variable: String, message: String },
    /// Malformed syntax such as `${VAR` or `${}`.
    #[error("invalid interpolation format for {text:?}: {reason}")]
    Syntax { text: String, reason: String },
}

/// Compose's wording: the `: message` part is left out when the message is empty.
struct RequiredMessage<'a> {
    variable: &'a str,
    message: &'a str,
}

impl fmt::Display for RequiredMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "required variable {} is missing a value", self.variable)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

const SYNTAX_REASON: &str = "`${` must be followed by a variable name, an optional modifier \
     (`:-`, `-`, `:?`, `?`, `:+`, `+`) and a closing `}` on the same line; \
     write `$$` for a literal `$`";

/// Interpolates `text` with Compose's rules, looking variables up with `lookup`
/// (`None` means unset; `Some("")` means set but empty).
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let mut substitution = Substitution {
        lookup,
        variables: Vec::new(),
    };
    let value = substitution.substitute(text)?;
    Ok(Interpolated {
        value,
        variables: substitution.variables,
    })
}

/// What a `$` at some position starts, as compose-go's regular expression sees it.
enum Token {
    /// `$$`.
    Escaped,
    /// `$NAME`.
    Named { name_end: usize },
    /// `${...}` up to and including `end - 1`.
    Braced { end: usize },
    /// `${` followed by something that is not a valid braced expression.
    Invalid,
}

/// The modifiers, in the form they are written after the variable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    /// `:-`: default when unset or empty.
    DefaultUnsetOrEmpty,
    /// `-`: default when unset.
    DefaultUnset,
    /// `:?`: error when unset or empty.
    RequiredNonEmpty,
    /// `?`: error when unset.
    Required,
    /// `:+`: alternate when set and not empty.
    AlternateNonEmpty,
    /// `+`: alternate when set.
    Alternate,
}

impl Modifier {
    /// Reads the modifier starting at `bytes[0]`, returning it and its length.
    fn parse(bytes: &[u8]) -> Option<(Modifier, usize)> {
        let (colon, operator) = match bytes {
            [b':', operator, ..] => (true, *operator),
            [operator, ..] => (false, *operator),
            [] => return None,
        };
        let modifier = match (colon, operator) {
            (true, b'-') => Modifier::DefaultUnsetOrEmpty,
            (false, b'-') => Modifier::DefaultUnset,
            (true, b'?') => Modifier::RequiredNonEmpty,
            (false, b'?') => Modifier::Required,
            (true, b'+') => Modifier::AlternateNonEmpty,
            (false, b'+') => Modifier::Alternate,
            _ => return None,
        };
        Some((modifier, if colon { 2 } else { 1 }))
    }
}

fn is_name_start(byte: u8) -> bool {
    byte == b'_' || byte.is_ascii_alphabetic()
}

fn is_name_continue(byte: u8) -> bool {
    byte == b'_' || byte.is_ascii_alphanumeric()
}

/// End (exclusive) of the variable name starting at `start`, if one starts there.
fn name_end(bytes: &[u8], start: usize) -> Option<usize> {
    if !bytes.get(start).copied().is_some_and(is_name_start) {
        return None;
    }
    let length = bytes[start..]
        .iter()
        .take_while(|&&byte| is_name_continue(byte))
        .count();
    Some(start + length)
}

/// Classifies what the `$` at `dollar` starts; `None` means a literal `$`.
fn token_at(bytes: &[u8], dollar: usize) -> Option<Token> {
    match bytes.get(dollar + 1)? {
        b'$' => Some(Token::Escaped),
        b'{' => Some(braced_token(bytes, dollar)),
        _ => name_end(bytes, dollar + 1).map(|name_end| Token::Named { name_end }),
    }
}

fn braced_token(bytes: &[u8], dollar: usize) -> Token {
    let Some(name_end) = name_end(bytes, dollar + 2) else {
        return Token::Invalid;
    };
    if bytes.get(name_end) == Some(&b'}') {
        return Token::Braced { end: name_end + 1 };
    }
    let Some((_, modifier_length)) = Modifier::parse(&bytes[name_end..]) else {
        return Token::Invalid;
    };
    // The argument is `.*` followed by `}`: it ends at the last `}` of the line.
    let argument_start = name_end + modifier_length;
    let line_end = bytes[argument_start..]
        .iter()
        .position(|&byte| byte == b'\n')
        .map_or(bytes.len(), |offset| argument_start + offset);
    match bytes[argument_start..line_end]
        .iter()
        .rposition(|&byte| byte == b'}')
    {
        Some(offset) => Token::Braced {
            end: argument_start + offset + 1,
        },
        None => Token::Invalid,
    }
}

/// compose-go's `getFirstBraceClosingIndex`: every `{` opens (and the byte after
/// it is skipped), every `}` closes.
fn first_brace_closing_index(bytes: &[u8]) -> Option<usize> {
    let mut open = 0i64;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'}' {
            open -= 1;
            if open == 0 {
                return Some(index);
            }
        }
        if bytes[index] == b'{' {
            open += 1;
            index += 1;
        }
        index += 1;
    }
    None
}

struct Substitution<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    variables: Vec<String>,
}

impl Substitution<'_> {
    fn substitute(&mut self, template: &str) -> Result<String, InterpolationError> {
        let bytes = template.as_bytes();
        let mut output = String::with_capacity(template.len());
        let mut copied_up_to = 0;
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] != b'$' {
                index += 1;
                continue;
            }
            let Some(token) = token_at(bytes, index) else {
                index += 1;
                continue;
            };
            output.push_str(&template[copied_up_to..index]);
            let end = match token {
                Token::Escaped => {
                    output.push('$');
                    index + 2
                }
                Token::Named { name_end } => {
                    output.push_str(&self.value_of(&template[index + 1..name_end]));
                    name_end
                }
                Token::Braced { end } => {
                    output.push_str(&self.braced(&template[index..end])?);
                    end
                }
                Token::Invalid => {
                    return Err(InterpolationError::Syntax {
                        text: template.to_string(),
                        reason: SYNTAX_REASON.to_string(),
                    });
                }
            };
            index = end;
            copied_up_to = end;
        }
        output.push_str(&template[copied_up_to..]);
        Ok(output)
    }

    /// Evaluates one `${...}` match (`expression` starts with `${` and ends with `}`).
    fn braced(&mut self, expression: &str) -> Result<String, InterpolationError> {
        let (expression, rest) = match first_brace_closing_index(expression.as_bytes()) {
            Some(closing) => expression.split_at(closing + 1),
            None => (expression, ""),
        };
        let inner = &expression[2..expression.len() - 1];
        let name_length = inner
            .bytes()
            .take_while(|&byte| is_name_continue(byte))
            .count();
        let (name, after_name) = inner.split_at(name_length);
        let mut value = match Modifier::parse(after_name.as_bytes()) {
            None => self.value_of(name),
            Some((modifier, modifier_length)) => {
                self.record(name);
                let argument = self.substitute(&after_name[modifier_length..])?;
                self.apply(name, modifier, argument)?
            }
        };
        if !rest.is_empty() {
            value.push_str(&self.substitute(rest)?);
        }
        Ok(value)
    }

    fn apply(
        &mut self,
        name: &str,
        modifier: Modifier,
        argument: String,
    ) -> Result<String, InterpolationError> {
        let current = (self.lookup)(name);
        let is_set = current.is_some();
        let is_non_empty = current.as_deref().is_some_and(|value| !value.is_empty());
        let value = current.unwrap_or_default();
        let missing = |variable: &str, message: String| InterpolationError::Required {
            variable: variable.to_string(),
            message,
        };
        Ok(match modifier {
            Modifier::DefaultUnsetOrEmpty if !is_non_empty => argument,
            Modifier::DefaultUnset if !is_set => argument,
            Modifier::RequiredNonEmpty if !is_non_empty => return Err(missing(name, argument)),
            Modifier::Required if !is_set => return Err(missing(name, argument)),
            Modifier::AlternateNonEmpty if is_non_empty => argument,
            Modifier::Alternate if is_set => argument,
            _ => value,
        })
    }

    fn value_of(&mut self, name: &str) -> String {
        self.record(name);
        (self.lookup)(name).unwrap_or_default()
    }

    fn record(&mut self, name: &str) {
        if !self.variables.iter().any(|known| known == name) {
            self.variables.push(name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(name: &str) -> Option<String> {
        match name {
            "SET" => Some("val".into()),
            "EMPTY" => Some(String::new()),
            "OTHER" => Some("other".into()),
            "lower" => Some("low".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<Interpolated, InterpolationError> {
        interpolate(text, &environment)
    }

    #[test]
    fn values_match_compose() {
        // (input, expected value); every expectation was checked against
        // docker-compose v2.40.3 (see tests/interpolation_parity.rs).
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("", ""),
            ("$SET", "val"),
            ("${SET}", "val"),
            ("$lower ${lower}", "low low"),
            ("$SET-x", "val-x"),
            ("${SET}x$SET.y", "valxval.y"),
            ("$UNSET|${UNSET}", "|"),
            ("$$", "$"),
            ("$$SET", "$SET"),
            ("$${SET}", "${SET}"),
            ("$$$SET", "$val"),
            ("$", "$"),
            ("a$", "a$"),
            ("a$ b$1 c$- d$.", "a$ b$1 c$- d$."),
            ("$_ $1A", " $1A"),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${SET:-d}", "val"),
            ("${UNSET-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${SET-d}", "val"),
            ("${SET-}", "val"),
            ("${UNSET-}", ""),
            ("${UNSET:-}", ""),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${UNSET:+alt}", ""),
            ("${SET+alt}", "alt"),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${SET:?boom}", "val"),
            ("${EMPTY?boom}", ""),
            ("${UNSET:-${OTHER}}", "other"),
            ("${UNSET:-$OTHER}", "other"),
            ("${UNSET:-${UNSET2:-deep}}", "deep"),
            ("${UNSET-${UNSET:-${SET}}}", "val"),
            ("${SET:+${OTHER}-x}", "other-x"),
            ("${UNSET:-a b} c", "a b c"),
            ("${UNSET:-a}b}", "ab}"),
            ("${UNSET:-}}", "}"),
            ("${SET:-a}}}", "val}}"),
            ("${UNSET:-a} ${UNSET:-b}", "a b"),
            ("${UNSET:-{x}}", "{x}"),
            ("${UNSET:-{}}", "{}"),
            ("${UNSET:-{x}y}", "{x}y"),
            ("${UNSET:-{}x}y}", "{}x}y"),
            ("${UNSET:-$${}b}", "${}b"),
            ("${UNSET:-$}", "$"),
            ("${UNSET:-$$}", "$"),
            ("${UNSET:-a}\n}", "a\n}"),
            ("${UNSET:-a}\n${SET}}", "a\nval}"),
            ("${UNSET:-x:-y}", "x:-y"),
            ("${UNSET-x?y}", "x?y"),
        ];
        for (input, expected) in cases {
            let result = run(input).unwrap_or_else(|error| panic!("{input:?}: {error}"));
            assert_eq!(result.value, *expected, "input {input:?}");
        }
    }

    #[test]
    fn errors_match_compose() {
        let required = |variable: &str, message: &str| InterpolationError::Required {
            variable: variable.into(),
            message: message.into(),
        };
        let syntax = |text: &str| InterpolationError::Syntax {
            text: text.into(),
            reason: SYNTAX_REASON.into(),
        };
        let cases: Vec<(&str, InterpolationError)> = vec![
            ("${UNSET:?boom}", required("UNSET", "boom")),
            ("${EMPTY:?boom}", required("EMPTY", "boom")),
            ("${UNSET?boom}", required("UNSET", "boom")),
            ("${UNSET:?}", required("UNSET", "")),
            ("${UNSET?msg ${SET}}", required("UNSET", "msg val")),
            // The default is evaluated even when the variable is set.
            ("${SET:-${UNSET:?boom}}", required("UNSET", "boom")),
            (
                "${UNSET:?outer ${UNSET2:?inner}}",
                required("UNSET2", "inner"),
            ),
            ("${}", syntax("${}")),
            ("${SET", syntax("${SET")),
            ("x ${SET:x}", syntax("x ${SET:x}")),
            ("${SET:}", syntax("${SET:}")),
            ("${A B}", syntax("${A B}")),
            ("${A[x]}", syntax("${A[x]}")),
            ("${1A}", syntax("${1A}")),
            ("${UNSET:-a\nb}", syntax("${UNSET:-a\nb}")),
            // The nested text is reported, as Compose does.
            ("${UNSET:-x ${SET}", syntax("x ${SET")),
            ("${SET:-x ${SET}", syntax("x ${SET")),
            ("${UNSET-${}}", syntax("${}")),
            ("${SET:?e ${}}", syntax("e ${}")),
            ("ok ${UNSET:?first} ${}", required("UNSET", "first")),
        ];
        for (input, expected) in cases {
            assert_eq!(run(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn required_message_omits_empty_reason() {
        let empty = run("${UNSET:?}").unwrap_err();
        assert_eq!(
            empty.to_string(),
            "required variable UNSET is missing a value"
        );
        let with_reason = run("${UNSET?set it in .env}").unwrap_err();
        assert_eq!(
            with_reason.to_string(),
            "required variable UNSET is missing a value: set it in .env"
        );
        let syntax = run("${oops").unwrap_err().to_string();
        assert!(syntax.starts_with("invalid interpolation format for \"${oops\""));
        assert!(syntax.contains("write `$$` for a literal `$`"), "{syntax}");
    }

    #[test]
    fn variables_are_listed_in_order_without_duplicates() {
        let cases: &[(&str, &[&str])] = &[
            ("no variables $$X", &[]),
            ("$SET ${UNSET} $SET", &["SET", "UNSET"]),
            ("${UNSET:-${OTHER:-$SET}}", &["UNSET", "OTHER", "SET"]),
            // Defaults are evaluated even when not used, so they count.
            ("${SET:-$OTHER}", &["SET", "OTHER"]),
            ("${SET:+$OTHER} $EMPTY", &["SET", "OTHER", "EMPTY"]),
            ("${UNSET:-a}${lower}", &["UNSET", "lower"]),
        ];
        for (input, expected) in cases {
            let result = run(input).unwrap();
            assert_eq!(result.variables, *expected, "input {input:?}");
        }
    }

    #[test]
    fn unicode_text_passes_through() {
        let result = run("héllo ${UNSET:-wörld} ✓ $SET€").unwrap();
        assert_eq!(result.value, "héllo wörld ✓ val€");
    }
}
