//! Declared licenses as an SPDX license expression, only when they are one. Package databases
//! declare licenses in their own vocabularies (Debian's copyright-format short names such as
//! `GPL-2+`; Alpine and Fedora mostly SPDX): a name that is not a valid SPDX identifier or
//! expression is never guessed into one, since a wrong license in an SBOM is worse than none.
//! Such names are kept verbatim as named licenses (CycloneDX) and license comments (SPDX).

/// The SPDX expression of `declared` (joined with `AND`: a package is under all the
/// licenses its files are), or `None` when any of them is not strict SPDX.
pub fn spdx_expression(declared: &[String]) -> Option<String> {
    if declared.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(declared.len());
    for name in declared {
        let name = name.trim();
        let parsed = spdx::Expression::parse_mode(name, spdx::ParseMode::STRICT).ok()?;
        // A LicenseRef names something this document does not define.
        if parsed.requirements().any(|r| r.req.license.id().is_none()) {
            return None;
        }
        parts.push(if declared.len() > 1 && name.contains(' ') {
            format!("({name})")
        } else {
            name.to_owned()
        });
    }
    Some(parts.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_strict_spdx_becomes_an_expression() {
        assert_eq!(spdx_expression(&names(&["MIT"])).as_deref(), Some("MIT"));
        assert_eq!(
            spdx_expression(&names(&["GPL-2.0-or-later", "MIT OR Apache-2.0"])).as_deref(),
            Some("GPL-2.0-or-later AND (MIT OR Apache-2.0)")
        );
        // Debian short names and free text are not SPDX: nothing is guessed.
        assert_eq!(spdx_expression(&names(&["GPL-2+"])), None);
        assert_eq!(spdx_expression(&names(&["MIT", "public-domain"])), None);
        assert_eq!(spdx_expression(&names(&["LicenseRef-x"])), None);
        assert_eq!(spdx_expression(&[]), None);
    }
}
