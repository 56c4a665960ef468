//! Names in the output directory that belong to airlock: a build's outputs may not take
//! them, so nothing airlock writes beside the outputs can replace an artifact, and no
//! artifact can pass for airlock's provenance.

/// Suffixes of the files airlock writes next to the outputs (`<job>.intoto.jsonl`,
/// `<job>.sigstore.json`) and of its temporary files (`*.airlock-partial`).
pub const RESERVED_OUTPUT_SUFFIXES: &[&str] =
    &[".intoto.jsonl", ".sigstore.json", ".airlock-partial"];

/// Whether one path component names (or could be a directory above) an airlock file.
pub fn is_reserved_component(component: &str) -> bool {
    RESERVED_OUTPUT_SUFFIXES
        .iter()
        .any(|suffix| component.ends_with(suffix) || component.contains(".airlock-partial"))
}

/// Suffix of the signed SBOM statement airlock writes beside a job's provenance
/// (`<job>.sbom.intoto.jsonl`, reserved through `.intoto.jsonl`).
pub const SBOM_STATEMENT_SUFFIX: &str = ".sbom.intoto.jsonl";

/// Suffix of the signed runtime trace statement (`<job>.trace.intoto.jsonl`, docs/trace.md).
pub const TRACE_STATEMENT_SUFFIX: &str = ".trace.intoto.jsonl";

/// The SBOM documents of job `job` beside its outputs (`<job>.spdx.json`, `<job>.cdx.json`;
/// the signed statement, `<job>.sbom.intoto.jsonl`, is covered by the reserved suffixes).
/// Only these exact names are the job's: a build may ship SBOMs of its own under other names.
pub fn sbom_file_names(job: &str) -> [String; 2] {
    [format!("{job}.spdx.json"), format!("{job}.cdx.json")]
}

/// Whether output `path` of job `job` would take the place of one of its SBOM documents.
pub fn is_sbom_file_name(job: &str, path: &str) -> bool {
    sbom_file_names(job).iter().any(|name| name == path)
}

/// The first component of the `/`-separated output path `path` that is reserved, if any.
pub fn reserved_component(path: &str) -> Option<&str> {
    path.split('/').find(|c| is_reserved_component(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_jobs_own_sbom_names_are_reserved() {
        assert!(is_sbom_file_name("hello", "hello.spdx.json"));
        assert!(is_sbom_file_name("hello", "hello.cdx.json"));
        for ok in [
            "other.spdx.json",
            "dist/hello.spdx.json",
            "hello.spdx",
            "hello",
        ] {
            assert!(!is_sbom_file_name("hello", ok), "{ok}");
        }
    }

    #[test]
    fn airlock_names_are_reserved_in_every_component() {
        for bad in [
            "clob.intoto.jsonl",
            "clob.sigstore.json",
            "x.airlock-partial",
            "provdir.intoto.jsonl/a",
            "bin/x.airlock-partial.1",
        ] {
            assert!(reserved_component(bad).is_some(), "{bad}");
        }
        for ok in [
            "hello",
            "dist/app.tar.gz",
            "intoto.json",
            "a.jsonl",
            "sigstore",
        ] {
            assert_eq!(reserved_component(ok), None, "{ok}");
        }
    }
}
