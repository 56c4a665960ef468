//! Debian control-file syntax (deb822): stanzas of `Field: value` lines separated by blank
//! lines, continuation lines starting with a space or tab.
//!
//! Only the first line of each field is kept (borrowed from the text): the fields a package
//! database entry needs are single-line, and continuation lines (`Description`,
//! `Conffiles`) can be long, so they are skipped rather than collected.

use super::PackagesError;

/// One field: its name, its first-line value (trimmed) and its 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Field<'a> {
    /// The field name as written.
    pub(super) name: &'a str,
    /// The value on the field's first line, trimmed.
    pub(super) value: &'a str,
    /// The 1-based line the field starts on.
    pub(super) line: usize,
}

/// One stanza: its fields in order and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stanza<'a> {
    /// The 1-based line of the stanza's first field.
    pub(super) line: usize,
    /// Fields in file order.
    pub(super) fields: Vec<Field<'a>>,
}

impl<'a> Stanza<'a> {
    /// The first field called `name` (field names are case-insensitive in deb822).
    pub(super) fn get(&self, name: &str) -> Option<Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .copied()
    }
}

/// Splits `text` (the contents of in-image `file`) into stanzas. A line that is neither
/// blank, a continuation nor `Field: value` is an error naming the file and line.
pub(super) fn parse<'a>(file: &str, text: &'a str) -> Result<Vec<Stanza<'a>>, PackagesError> {
    let mut stanzas = Vec::new();
    let mut current: Option<Stanza<'a>> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        if content.trim().is_empty() {
            stanzas.extend(current.take());
            continue;
        }
        if content.starts_with([' ', '\t']) {
            if current.is_none() {
                return Err(malformed(file, line, "continuation line outside a field"));
            }
            continue;
        }
        let Some((name, value)) = content.split_once(':') else {
            return Err(malformed(file, line, "line is not `Field: value`"));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(malformed(file, line, "invalid field name"));
        }
        let field = Field {
            name,
            value: value.trim(),
            line,
        };
        match current.as_mut() {
            Some(stanza) => stanza.fields.push(field),
            None => {
                current = Some(Stanza {
                    line,
                    fields: vec![field],
                })
            }
        }
    }
    stanzas.extend(current);
    Ok(stanzas)
}

/// A [`PackagesError::Malformed`] for `file` at `line`.
pub(super) fn malformed(file: &str, line: usize, reason: impl Into<String>) -> PackagesError {
    PackagesError::Malformed {
        file: file.to_owned(),
        line,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_fields_and_lines() {
        let text =
            "Package: a\nDescription: short\n long\n .\n more\n\n\nPackage: b\r\nversion: 1\n";
        let stanzas = parse("/f", text).expect("parse");
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].line, 1);
        assert_eq!(
            stanzas[0].get("description").map(|f| f.value),
            Some("short")
        );
        assert_eq!(stanzas[1].line, 8);
        assert_eq!(stanzas[1].get("Package").map(|f| f.value), Some("b"));
        assert_eq!(
            stanzas[1].get("Version").map(|f| (f.value, f.line)),
            Some(("1", 9))
        );
    }

    #[test]
    fn bad_lines_name_the_line() {
        let err = parse("/f", "Package: a\nnot a field\n").expect_err("bad line");
        assert_eq!(err.to_string(), "/f:2: line is not `Field: value`");
        let err = parse("/f", "\n continued\n").expect_err("orphan continuation");
        assert!(err.to_string().starts_with("/f:2:"), "{err}");
        let err = parse("/f", "Bad Name: x\n").expect_err("space in name");
        assert!(err.to_string().starts_with("/f:1:"), "{err}");
    }
}
