//! Image references: always pinned by manifest digest.

use std::fmt;
use std::str::FromStr;

use airlock_attest::Sha256Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a job's image comes from, pinned by the sha256 of its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory on the runner's disk: `oci-layout:DIR@sha256:HEX`.
    OciLayout {
        /// The layout directory (absolute once the job is submitted).
        dir: String,
        /// Manifest digest.
        digest: Sha256Digest,
    },
    /// An image in an OCI registry: `host/repo@sha256:HEX`.
    Registry {
        /// Registry host and repository, without tag.
        repository: String,
        /// Manifest digest.
        digest: Sha256Digest,
    },
}

impl ImageRef {
    /// The pinned manifest digest.
    pub fn digest(&self) -> &Sha256Digest {
        match self {
            ImageRef::OciLayout { digest, .. } | ImageRef::Registry { digest, .. } => digest,
        }
    }
}

const PIN_HINT: &str =
    "pin the image by digest: `NAME@sha256:<64 hex>` or `oci-layout:DIR@sha256:<64 hex>`";

impl FromStr for ImageRef {
    type Err = (String, String);

    /// Errors are (message, hint).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((name, digest)) = s.rsplit_once('@') else {
            return Err((format!("`{s}` has no digest"), PIN_HINT.to_string()));
        };
        let digest = Sha256Digest::parse_prefixed(digest).map_err(|e| {
            (
                format!("`{digest}` is not a sha256 digest ({e})"),
                PIN_HINT.to_string(),
            )
        })?;
        if let Some(dir) = name.strip_prefix("oci-layout:") {
            if dir.is_empty() {
                return Err(("the oci-layout directory is empty".into(), PIN_HINT.into()));
            }
            return Ok(ImageRef::OciLayout {
                dir: dir.to_string(),
                digest,
            });
        }
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err((format!("`{name}` is not an image name"), PIN_HINT.into()));
        }
        // A tag next to a digest is ambiguous; refuse rather than guess which wins.
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.contains(':') {
            return Err((
                format!("`{s}` carries both a tag and a digest"),
                "drop the tag: the digest alone pins the image".into(),
            ));
        }
        Ok(ImageRef::Registry {
            repository: name.to_string(),
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::OciLayout { dir, digest } => {
                write!(f, "oci-layout:{dir}@{}", digest.prefixed())
            }
            ImageRef::Registry { repository, digest } => {
                write!(f, "{repository}@{}", digest.prefixed())
            }
        }
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|(m, h): (String, String)| {
            serde::de::Error::custom(format!("{m}{}{h}", crate::error::HINT_SEPARATOR))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_pinned_refs() {
        let r: ImageRef = format!("oci-layout:../base@sha256:{HEX}").parse().unwrap();
        assert!(matches!(r, ImageRef::OciLayout { ref dir, .. } if dir == "../base"));
        let r: ImageRef = format!("localhost:5000/base@sha256:{HEX}").parse().unwrap();
        assert!(
            matches!(r, ImageRef::Registry { ref repository, .. } if repository == "localhost:5000/base")
        );
        assert_eq!(r.to_string(), format!("localhost:5000/base@sha256:{HEX}"));
    }

    #[test]
    fn refuses_tags_and_bad_digests() {
        assert!("debian:bookworm".parse::<ImageRef>().is_err());
        assert!(
            format!("debian:bookworm@sha256:{HEX}")
                .parse::<ImageRef>()
                .is_err()
        );
        assert!("debian@sha256:abc".parse::<ImageRef>().is_err());
        assert!(
            format!("debian@sha256:{}", HEX.to_uppercase())
                .parse::<ImageRef>()
                .is_err()
        );
        assert!(format!("debian@md5:{HEX}").parse::<ImageRef>().is_err());
    }
}
