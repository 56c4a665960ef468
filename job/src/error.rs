//! Errors that point at the file, the field and what to do.

use std::fmt;
use std::path::PathBuf;

/// Separates a value's own hint (after `HINT_SEPARATOR`) from its message in a
/// deserialization error's text.
pub(crate) const HINT_SEPARATOR: &str = "\nhint: ";

/// A job file or job spec that cannot be accepted.
///
/// Display shows `FILE: field `F`: MESSAGE` and, when known, a hint line, so a
/// user can fix the file without reading code.
#[derive(Debug, thiserror::Error)]
pub struct JobFileError {
    /// The file at fault (`<submitted spec>` for specs that arrived over the API).
    pub file: PathBuf,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted path of the field at fault, e.g. `steps[1].run`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl JobFileError {
    /// An error about `field`, with a hint.
    pub fn field(
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) -> Self {
        Self {
            file: PathBuf::new(),
            line: None,
            field: Some(field.into()),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Attaches the file the error came from.
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = file.into();
        self
    }
}

impl fmt::Display for JobFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.as_os_str().is_empty() {
            write!(f, "job spec")?;
        } else {
            write!(f, "{}", self.file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
