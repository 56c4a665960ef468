//! The shapes of names and paths a job file may use (job, input, cache and label names;
//! paths inside the source or `/out`), shared by every section's checks.

use std::path::{Component, Path};

/// True when `s` is 1-`max` characters of `[A-Za-z0-9._-]`, not starting with `.`.
pub(crate) fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !s.starts_with('.')
}

/// True when `s` is a valid job name (`[A-Za-z0-9._-]`, 1-64 characters, not starting with
/// `.`): safe as the stem of a file name.
pub fn is_job_name(s: &str) -> bool {
    is_name(s, 64)
}

/// True when `p` is a relative path with no `..`, `.` or empty components.
pub fn is_clean_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}
