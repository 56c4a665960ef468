//! The attestations of an OCI image layout: every `*.intoto.jsonl` file in the layout
//! directory's parent, one envelope per non-empty line. That is where `airlock run --out DIR`
//! writes a job's provenance (`DIR/<job>.intoto.jsonl` beside the image `DIR/<name>/`), and
//! it includes `<layout>.intoto.jsonl` for a layout copied elsewhere with its provenance.
//!
//! Symlinks are not followed (`O_NOFOLLOW`), only regular files are read, each at most
//! [`LookupLimits::max_envelope_bytes`], and the directory scan stops after
//! [`LookupLimits::max_dir_entries`] entries. Nothing read is ever echoed into a message.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Lookup, LookupLimits};

/// The suffix of an attestation file.
const SUFFIX: &str = ".intoto.jsonl";

/// Finds the envelopes beside the layout at `dir` (canonical). Unreadable places become
/// refusals: the job then fails saying why.
pub(super) fn beside_layout(dir: &Path, limits: &LookupLimits) -> Lookup {
    let Some(parent) = dir.parent() else {
        let mut lookup = Lookup {
            looked_for: format!("*{SUFFIX} beside the layout {}", dir.display()),
            ..Lookup::default()
        };
        lookup.refuse(
            dir.display().to_string(),
            "the layout has no parent directory",
        );
        return lookup;
    };
    let mut lookup = Lookup {
        looked_for: format!(
            "*{SUFFIX} files beside the layout, in {} (one DSSE envelope per line)",
            parent.display()
        ),
        ..Lookup::default()
    };
    let files = match attestation_files(parent, limits) {
        Ok(files) => files,
        Err(reason) => {
            lookup.refuse(parent.display().to_string(), reason);
            return lookup;
        }
    };
    for path in files {
        let shown = path.display().to_string();
        let bytes = match read_capped(&path, limits.max_envelope_bytes) {
            Ok(b) => b,
            Err(reason) => {
                lookup.refuse(shown, reason);
                continue;
            }
        };
        let mut lines = 0usize;
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            lines += 1;
            lookup.offer(limits, format!("{shown} line {}", i + 1), line.to_vec());
        }
        if lines == 0 {
            lookup.refuse(shown, "empty: it holds no envelope");
        }
    }
    lookup
}

/// The `*.intoto.jsonl` names in `parent`, sorted; at most `max_dir_entries` entries scanned.
fn attestation_files(parent: &Path, limits: &LookupLimits) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(parent).map_err(|e| format!("cannot list it: {e}"))?;
    let mut found = Vec::new();
    for (n, entry) in entries.enumerate() {
        if n >= limits.max_dir_entries {
            return Err(format!(
                "more than {} entries: put the layout and its provenance in a directory of \
                 their own",
                limits.max_dir_entries
            ));
        }
        let entry = entry.map_err(|e| format!("cannot list it: {e}"))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(SUFFIX)) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Reads a regular file (never through a symlink, never blocking on a FIFO) of at most `cap`
/// bytes.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => "a symlink; attestation files are not followed".to_owned(),
            _ => format!("cannot open it: {e}"),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > cap {
        return Err(format!(
            "{} bytes, larger than the {cap} bytes an attestation file may have",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "larger than the {cap} bytes an attestation file may have"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use airlock_attest::{Sha256Digest, SigningKey};

    use super::super::tests::{envelope_for, trust};
    use super::super::{CheckedImage, ImageCheckError, verify_lookup};
    use super::*;

    fn image(dir: &Path, digest: Sha256Digest) -> CheckedImage {
        CheckedImage::Layout {
            dir: dir.to_owned(),
            digest,
        }
    }

    #[test]
    fn the_jobs_provenance_beside_the_layout_vouches_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("hello-image");
        std::fs::create_dir(&layout).unwrap();
        let key = SigningKey::generate().unwrap();
        let digest = Sha256Digest::of(b"manifest");
        // As `airlock run --out` writes it: `<job>.intoto.jsonl`, one line and a newline;
        // and a file of another image next to it, which is simply not a match.
        let mut line = envelope_for(&digest, &key);
        line.push(b'\n');
        std::fs::write(tmp.path().join("img.intoto.jsonl"), &line).unwrap();
        let mut other = envelope_for(&Sha256Digest::of(b"other"), &key);
        other.push(b'\n');
        std::fs::write(tmp.path().join("a-other.intoto.jsonl"), &other).unwrap();
        std::fs::write(tmp.path().join("notes.txt"), b"ignored").unwrap();

        let lookup = beside_layout(&layout, &LookupLimits::default());
        assert_eq!(lookup.candidates.len(), 2, "{lookup:?}");
        assert!(
            lookup
                .looked_for
                .contains(&tmp.path().display().to_string())
        );
        let v = verify_lookup(&image(&layout, digest), lookup, &trust(&[&key])).unwrap();
        assert_eq!(
            v.origin,
            format!("{} line 1", tmp.path().join("img.intoto.jsonl").display())
        );
        assert_eq!(v.envelope_digest, Sha256Digest::of(&line[..line.len() - 1]));
    }

    #[test]
    fn oversized_symlinked_special_and_missing_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("hello-image");
        std::fs::create_dir(&layout).unwrap();
        let key = SigningKey::generate().unwrap();
        let digest = Sha256Digest::of(b"manifest");
        let limits = LookupLimits {
            max_envelope_bytes: 64,
            ..LookupLimits::default()
        };

        // Nothing there at all.
        let lookup = beside_layout(&layout, &limits);
        assert!(lookup.candidates.is_empty() && lookup.refused.is_empty());
        let e = verify_lookup(&image(&layout, digest), lookup, &trust(&[&key])).unwrap_err();
        assert!(e.to_string().contains("found none"), "{e}");

        // A valid envelope, but larger than the cap: never parsed.
        std::fs::write(
            tmp.path().join("big.intoto.jsonl"),
            envelope_for(&digest, &key),
        )
        .unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, b"host secret").unwrap();
        std::os::unix::fs::symlink(&secret, tmp.path().join("link.intoto.jsonl")).unwrap();
        nix::unistd::mkfifo(
            &tmp.path().join("fifo.intoto.jsonl"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::fs::create_dir(tmp.path().join("dir.intoto.jsonl")).unwrap();
        std::fs::write(tmp.path().join("empty.intoto.jsonl"), b"\n\n").unwrap();
        let lookup = beside_layout(&layout, &limits);
        assert!(lookup.candidates.is_empty(), "{lookup:?}");
        let reason = |name: &str| {
            lookup
                .refused
                .iter()
                .find(|r| r.origin.ends_with(name))
                .map(|r| r.reason.clone())
                .unwrap_or_else(|| panic!("{name} not refused: {lookup:?}"))
        };
        assert!(reason("big.intoto.jsonl").contains("larger than the 64 bytes"));
        assert!(reason("link.intoto.jsonl").contains("symlink"));
        assert!(reason("fifo.intoto.jsonl").contains("not a regular file"));
        assert!(reason("dir.intoto.jsonl").contains("not a regular file"));
        assert!(reason("empty.intoto.jsonl").contains("no envelope"));
        let e = verify_lookup(&image(&layout, digest), lookup, &trust(&[&key])).unwrap_err();
        assert!(e.is_job_error());
        assert!(!e.to_string().contains("host secret"), "{e}");
        let ImageCheckError::NotVouched { refusals, .. } = e else {
            panic!("not NotVouched")
        };
        assert_eq!(refusals.len(), 5);
    }

    #[test]
    fn candidate_and_directory_caps_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("hello-image");
        std::fs::create_dir(&layout).unwrap();
        std::fs::write(tmp.path().join("many.intoto.jsonl"), "{}\n".repeat(5)).unwrap();
        let limits = LookupLimits {
            max_candidates: 3,
            ..LookupLimits::default()
        };
        let lookup = beside_layout(&layout, &limits);
        assert_eq!(lookup.candidates.len(), 3);
        assert_eq!(lookup.refused.len(), 2);
        assert!(lookup.refused[0].reason.contains("at most 3"), "{lookup:?}");

        let limits = LookupLimits {
            max_dir_entries: 1,
            ..LookupLimits::default()
        };
        let lookup = beside_layout(&layout, &limits);
        assert!(lookup.candidates.is_empty());
        assert!(
            lookup.refused[0].reason.contains("more than 1 entries"),
            "{lookup:?}"
        );
    }
}
