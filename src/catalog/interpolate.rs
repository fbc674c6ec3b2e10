//! Docker Compose variable interpolation, written by hand because no maintained
//! crate implements Compose's exact rules.
//!
//! STUB: the interface below is fixed; the implementation is being written.

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
    #[error("required variable {variable} is missing a value: {message}")]
    Required { variable: String, message: String },
    /// Malformed syntax such as `${VAR` or `${}`.
    #[error("invalid interpolation format for {text:?}: {reason}")]
    Syntax { text: String, reason: String },
}

/// Interpolates `text` with Compose's rules, looking variables up with `lookup`
/// (`None` means unset; `Some("")` means set but empty).
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let _ = lookup;
    Ok(Interpolated {
        value: text.to_string(),
        variables: Vec::new(),
    })
}
