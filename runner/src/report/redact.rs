//! Streaming redaction of secret values from job logs, before they leave the runner.
//!
//! A step's output arrives in arbitrary pieces, so a secret can be split across writes
//! (`"tok"` then `"en-123"`). [`Redactor`] holds back the shortest tail that could still
//! become a secret and emits everything before it with every secret occurrence replaced by
//! [`MASK`]; [`Redactor::finish`] flushes the tail when the stream ends. Where secrets overlap
//! (one is a prefix of another) the longest match wins, so no part of a longer secret leaks.
//! One redactor per output stream: bytes of different streams are never joined.

/// What a secret is replaced with.
pub const MASK: &[u8] = b"[REDACTED]";

/// Secrets shorter than this are not redacted: masking every `a` or `1` would destroy the
/// log and protect nothing (such values are not secrets).
pub const MIN_SECRET_LEN: usize = 4;

/// A streaming redactor over a fixed set of secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<Vec<u8>>,
    /// `first[b]`: some secret starts with byte `b`.
    first: Vec<bool>,
    pending: Vec<u8>,
}

/// Never shows the secrets.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .field("pending_bytes", &self.pending.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for `secrets` (empty and too-short values are ignored).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut r = Self {
            secrets: Vec::new(),
            first: vec![false; 256],
            pending: Vec::new(),
        };
        for s in secrets {
            r.add(s.as_ref());
        }
        r
    }

    /// Adds a secret (e.g. a token minted while the job runs). Output already emitted is not
    /// revisited; held-back bytes are.
    pub fn add(&mut self, secret: &[u8]) {
        if secret.len() < MIN_SECRET_LEN || self.secrets.iter().any(|s| s == secret) {
            return;
        }
        if self.first.len() != 256 {
            self.first = vec![false; 256];
        }
        self.first[usize::from(secret[0])] = true;
        self.secrets.push(secret.to_vec());
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Feeds bytes; returns the bytes that are safe to emit now.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
            return data.to_vec();
        }
        self.pending.extend_from_slice(data);
        self.drain(false)
    }

    /// Ends the stream: returns the held-back bytes, redacted.
    pub fn finish(&mut self) -> Vec<u8> {
        self.drain(true)
    }

    fn drain(&mut self, end: bool) -> Vec<u8> {
        let buf = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(buf.len());
        let mut pos = 0;
        while pos < buf.len() {
            if !self.first[usize::from(buf[pos])] {
                out.push(buf[pos]);
                pos += 1;
                continue;
            }
            let rest = &buf[pos..];
            // A longer secret may still complete here: decide once more bytes arrive.
            if !end
                && self
                    .secrets
                    .iter()
                    .any(|s| s.len() > rest.len() && s.starts_with(rest))
            {
                break;
            }
            match self
                .secrets
                .iter()
                .filter(|s| rest.starts_with(s))
                .map(Vec::len)
                .max()
            {
                Some(len) => {
                    out.extend_from_slice(MASK);
                    pos += len;
                }
                None => {
                    out.push(buf[pos]);
                    pos += 1;
                }
            }
        }
        self.pending = buf[pos..].to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn redact_all(secrets: &[&[u8]], pieces: &[&[u8]]) -> Vec<u8> {
        let mut r = Redactor::new(secrets.iter().copied());
        let mut out = Vec::new();
        for p in pieces {
            out.extend(r.push(p));
        }
        out.extend(r.finish());
        out
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn secret_split_across_writes_is_redacted() {
        let out = redact_all(&[b"hunter2-token"], &[b"pass=hun", b"ter2-", b"token\n"]);
        assert_eq!(out, b"pass=[REDACTED]\n");
    }

    #[test]
    fn longest_overlapping_secret_wins_and_nothing_leaks() {
        let out = redact_all(&[b"abcd", b"abcdefgh"], &[b"xabcd", b"efgh", b"y"]);
        assert_eq!(out, b"x[REDACTED]y");
        let out = redact_all(&[b"abcd", b"abcdefgh"], &[b"abcdefX"]);
        assert_eq!(out, b"[REDACTED]efX");
    }

    #[test]
    fn a_near_miss_is_released_and_short_values_are_ignored() {
        let mut r = Redactor::new([b"secret-value".as_slice(), b"ab"]);
        assert_eq!(r.push(b"secret-valu"), b"");
        assert_eq!(r.push(b"E"), b"secret-valuE");
        assert_eq!(r.push(b"ab"), b"ab");
        assert!(format!("{r:?}").contains("secrets: 1"));
        assert!(!format!("{r:?}").contains("secret-value"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// However the output is split, no secret survives, and text without secrets passes
        /// through unchanged.
        #[test]
        fn no_secret_survives_any_split(
            secrets in prop::collection::vec(prop::collection::vec(97u8..101, 4..9), 1..4),
            filler in prop::collection::vec(prop::collection::vec(97u8..102, 0..12), 1..6),
            cuts in prop::collection::vec(0usize..200, 0..12),
        ) {
            // Interleave filler and secrets: f0 s0 f1 s1 ...
            let mut text = Vec::new();
            for (i, f) in filler.iter().enumerate() {
                text.extend(f);
                text.extend(&secrets[i % secrets.len()]);
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts {
                pieces.push(&text[last..c]);
                last = c;
            }
            pieces.push(&text[last..]);
            let refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
            let split = redact_all(&refs, &pieces);
            let whole = redact_all(&refs, &[&text]);
            prop_assert_eq!(&split, &whole, "the result does not depend on the split");
            for s in &secrets {
                prop_assert!(!contains(&split, s), "secret {:?} leaked in {:?}", s, split);
            }
            let plain: Vec<u8> = text.iter().map(|b| if *b == 97 { b'z' } else { *b }).collect();
            let untouched = redact_all(&[b"qqqq"], &[&plain]);
            prop_assert_eq!(untouched, plain);
        }
    }
}
