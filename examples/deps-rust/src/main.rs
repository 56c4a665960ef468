//! airlock example `deps-rust`: parses a JSON catalogue embedded at compile time
//! and prints a deterministic summary. Every dependency comes from the Rust registry, pinned
//! with a checksum in Cargo.lock; in a sandboxed build the runner provides them offline.

use std::io::{self, Write};

use indexmap::IndexMap;
use regex::Regex;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

const CATALOGUE: &str = include_str!("catalogue.json");

#[derive(Debug, Deserialize)]
struct Catalogue {
    name: String,
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    version: String,
    license: String,
    downloads: u64,
    #[serde(default)]
    tags: SmallVec<[String; 4]>,
    description: String,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    catalogue: &'a str,
    packages: usize,
    valid_versions: usize,
    invalid_versions: Vec<&'a str>,
    total_downloads: u64,
    description_lines: usize,
    mentions_of_fast: usize,
    licenses: IndexMap<&'a str, usize>,
    tags: IndexMap<&'a str, SmallVec<[&'a str; 4]>>,
}

/// `1234567` -> `1,234,567`, formatted with itoa.
fn with_separators(n: u64) -> String {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(char::from(*d));
    }
    out
}

fn summarise(cat: &Catalogue) -> Summary<'_> {
    let semver = Regex::new(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-[0-9A-Za-z.-]+)?$")
        .expect("valid regex");
    let fast = memchr::memmem::Finder::new("Fast");

    let mut summary = Summary {
        catalogue: &cat.name,
        packages: cat.packages.len(),
        valid_versions: 0,
        invalid_versions: Vec::new(),
        total_downloads: 0,
        description_lines: 0,
        mentions_of_fast: 0,
        licenses: IndexMap::new(),
        tags: IndexMap::new(),
    };
    for p in &cat.packages {
        if semver.is_match(&p.version) {
            summary.valid_versions += 1;
        } else {
            summary.invalid_versions.push(&p.name);
        }
        summary.total_downloads += p.downloads;
        let text = p.description.as_bytes();
        summary.description_lines += memchr::memchr_iter(b'\n', text).count() + 1;
        summary.mentions_of_fast += fast.find_iter(text).count();
        *summary.licenses.entry(&p.license).or_insert(0) += 1;
        for tag in &p.tags {
            summary.tags.entry(tag.as_str()).or_default().push(&p.name);
        }
    }
    summary.licenses.sort_by(|ka, va, kb, vb| vb.cmp(va).then(ka.cmp(kb)));
    summary.tags.sort_keys();
    summary
}

fn main() -> io::Result<()> {
    let cat: Catalogue = serde_json::from_str(CATALOGUE).expect("embedded catalogue parses");
    let summary = summarise(&cat);

    let stdout = io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{}: {} packages", summary.catalogue, summary.packages)?;
    writeln!(out, "total downloads: {}", with_separators(summary.total_downloads))?;
    writeln!(
        out,
        "semver versions: {} valid, invalid: {:?}",
        summary.valid_versions, summary.invalid_versions
    )?;
    for (license, n) in &summary.licenses {
        writeln!(out, "license {:<20} {}", license, n)?;
    }
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    writeln!(out, "{}", json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators() {
        assert_eq!(with_separators(0), "0");
        assert_eq!(with_separators(999), "999");
        assert_eq!(with_separators(1000), "1,000");
        assert_eq!(with_separators(1234567), "1,234,567");
    }

    #[test]
    fn summary_of_the_embedded_catalogue() {
        let cat: Catalogue = serde_json::from_str(CATALOGUE).unwrap();
        let s = summarise(&cat);
        assert_eq!(s.packages, 9);
        assert_eq!(s.invalid_versions, vec!["left-pad"]);
        assert_eq!(s.licenses.get_index(0), Some((&"MIT OR Apache-2.0", &6)));
        assert_eq!(s.tags["no-std"].len(), 4);
    }
}
