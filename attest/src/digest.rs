//! Content digests: SHA-256 (how airlock names every artifact, input and log) and Git commit ids.
//!
//! Both types accept only lowercase hex of the exact length. in-toto requires lowercase hex in
//! `digest` maps, and accepting `ABC…` or a short prefix here would let two spellings name one
//! artifact, which a verifier comparing strings would then treat as different.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Prefix of the `algorithm:hex` form used by OCI and airlock job files.
const SHA256_PREFIX: &str = "sha256:";

/// Buffer size for [`hash_reader`]: large enough that syscall overhead is noise next to hashing.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The hex string has the wrong number of characters.
    #[error("{kind} must be {expected} lowercase hex characters, got {found}")]
    WrongLength {
        /// What was being parsed, e.g. "sha256 digest".
        kind: &'static str,
        /// Required number of hex characters.
        expected: usize,
        /// Number of characters given.
        found: usize,
    },
    /// The string contains something other than `0-9a-f` (uppercase is rejected on purpose).
    #[error("{kind} must be lowercase hex [0-9a-f], got {value:?}")]
    NotLowercaseHex {
        /// What was being parsed.
        kind: &'static str,
        /// The offending input.
        value: String,
    },
    /// The `sha256:` prefix is missing.
    #[error("expected a digest of the form \"sha256:<64 hex>\", got {value:?}")]
    MissingPrefix {
        /// The offending input.
        value: String,
    },
}

/// Decodes exactly `N` bytes from `2 * N` lowercase hex characters.
pub(crate) fn decode_lower_hex<const N: usize>(
    kind: &'static str,
    s: &str,
) -> Result<[u8; N], DigestError> {
    if s.len() != 2 * N {
        return Err(DigestError::WrongLength {
            kind,
            expected: 2 * N,
            found: s.chars().count(),
        });
    }
    // `hex` accepts uppercase too, so the alphabet is checked first.
    if !is_lower_hex(s) {
        return Err(DigestError::NotLowercaseHex {
            kind,
            value: s.to_owned(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| DigestError::NotLowercaseHex {
        kind,
        value: s.to_owned(),
    })?;
    Ok(out)
}

/// True when every byte of `s` is in `0-9a-f` (and `s` is non-empty).
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Hashes `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses exactly 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<Self, DigestError> {
        decode_lower_hex("sha256 digest", s).map(Self)
    }

    /// Parses `sha256:<64 lowercase hex>`; the prefix is required.
    pub fn parse_prefixed(s: &str) -> Result<Self, DigestError> {
        let hex = s
            .strip_prefix(SHA256_PREFIX)
            .ok_or_else(|| DigestError::MissingPrefix {
                value: s.to_owned(),
            })?;
        Self::from_hex(hex)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `sha256:<hex>`, the form OCI and airlock job files use.
    pub fn prefixed(&self) -> String {
        format!("{SHA256_PREFIX}{}", self.hex())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;

    /// Same as [`Sha256Digest::from_hex`]: bare hex, no prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental SHA-256 for data that arrives in pieces (files, streams, tar entries).
#[derive(Clone, Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    /// A hasher with no input yet.
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Consumes the hasher and returns the digest of everything fed so far.
    pub fn finalize(self) -> Sha256Digest {
        Sha256Digest(self.0.finalize().into())
    }
}

impl fmt::Debug for Sha256Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256Hasher")
    }
}

/// Lets a hasher be the target of `io::copy`, so a stream can be hashed while it is written.
impl io::Write for Sha256Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes and counts everything written through it to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256Hasher,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`; nothing hashed yet.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256Hasher::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the digest of everything written and its length.
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        (self.inner, self.hasher.finalize(), self.bytes)
    }
}

impl<W: io::Write> io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything `reader` yields; returns the digest and the number of bytes read.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256Hasher::new();
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut total: u64 = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            // A signal interrupting read(2) is not an error; retry as std's own helpers do.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hasher.finalize(), total))
}

/// A Git commit id as written in `digest.gitCommit`: 40 lowercase hex characters (SHA-1 Git).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GitCommit([u8; 20]);

impl GitCommit {
    /// Parses exactly 40 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<Self, DigestError> {
        decode_lower_hex("git commit id", s).map(Self)
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lowercase hex, 40 characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for GitCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for GitCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitCommit({})", self.hex())
    }
}

impl FromStr for GitCommit {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for GitCommit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for GitCommit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_digests() {
        assert_eq!(Sha256Digest::of(b"").hex(), EMPTY);
        assert_eq!(
            Sha256Digest::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::of(b"").prefixed(), format!("sha256:{EMPTY}"));
    }

    #[test]
    fn hex_round_trip_and_rejections() {
        let d = Sha256Digest::from_hex(EMPTY).unwrap();
        assert_eq!(d, Sha256Digest::of(b""));
        assert_eq!(EMPTY.parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(
            Sha256Digest::parse_prefixed(&format!("sha256:{EMPTY}")).unwrap(),
            d
        );
        assert!(matches!(
            Sha256Digest::parse_prefixed(EMPTY),
            Err(DigestError::MissingPrefix { .. })
        ));
        assert!(matches!(
            Sha256Digest::from_hex(&EMPTY.to_uppercase()),
            Err(DigestError::NotLowercaseHex { .. })
        ));
        assert!(matches!(
            Sha256Digest::from_hex(&EMPTY[..63]),
            Err(DigestError::WrongLength {
                expected: 64,
                found: 63,
                ..
            })
        ));
        assert!(Sha256Digest::from_hex(&format!("{}g", &EMPTY[..63])).is_err());
        // Non-ASCII input of the right byte length must not panic or pass.
        assert!(Sha256Digest::from_hex(&format!("é{}", &EMPTY[..62])).is_err());
    }

    #[test]
    fn serde_is_the_hex_string_and_validates() {
        let d = Sha256Digest::of(b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Sha256Digest>(&json).unwrap(), d);
        let upper = format!("\"{}\"", EMPTY.to_uppercase());
        assert!(serde_json::from_str::<Sha256Digest>(&upper).is_err());
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = Sha256Hasher::new();
        for chunk in data.chunks(7777) {
            h.update(chunk);
        }
        assert_eq!(h.finalize(), Sha256Digest::of(&data));

        let (d, n) = hash_reader(&data[..]).unwrap();
        assert_eq!((d, n), (Sha256Digest::of(&data), data.len() as u64));

        let mut w = Sha256Hasher::new();
        io::copy(&mut &data[..], &mut w).unwrap();
        assert_eq!(w.finalize(), Sha256Digest::of(&data));
    }

    #[test]
    fn git_commit() {
        let hex = "0123456789abcdef0123456789abcdef01234567";
        let c = GitCommit::from_hex(hex).unwrap();
        assert_eq!(c.to_string(), hex);
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{hex}\""));
        assert!(GitCommit::from_hex(&hex.to_uppercase()).is_err());
        assert!(GitCommit::from_hex(&hex[..39]).is_err());
        assert!(serde_json::from_str::<GitCommit>("\"0123\"").is_err());
    }
}
