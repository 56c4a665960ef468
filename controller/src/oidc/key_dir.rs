//! The token key directory: one `<kid>.key` (PKCS#8 PEM, 0600) and `<kid>.pub` (SPKI PEM) per
//! key, and `token-keys.json` recording each key's schedule. Kept apart from the provenance
//! keys (`airlock controller init` puts it at `<dir>/token-keys/`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use airlock_attest::{KeyError, SigningKey, load_signing_key, write_key_files};
use serde::{Deserialize, Serialize};

use super::keys::{KeyRing, KeyRingError, KeySchedule, TokenKey};

/// Name of the metadata file inside the key directory.
pub const METADATA_FILE: &str = "token-keys.json";
/// Version of the metadata format.
const METADATA_VERSION: u32 = 1;

/// Why the key directory could not be created, read or updated.
#[derive(Debug, thiserror::Error)]
pub enum KeyDirError {
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The metadata file is not valid JSON of the expected shape.
    #[error("{}: invalid token key metadata: {source}", path.display())]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The metadata file has another version.
    #[error("{}: token key metadata version {found} is not supported (expected {METADATA_VERSION})", path.display())]
    Version {
        /// The metadata file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A kid in the metadata is not 64 lowercase hex digits.
    #[error("{}: kid {kid:?} is not 64 lowercase hex digits", path.display())]
    InvalidKid {
        /// The metadata file.
        path: PathBuf,
        /// The kid.
        kid: String,
    },
    /// A key file holds a different key than its kid says.
    #[error("{}: the key's keyid is {actual}, not the kid {kid} the metadata records", path.display())]
    KidMismatch {
        /// The key file.
        path: PathBuf,
        /// The kid in the metadata.
        kid: String,
        /// The keyid of the key in the file.
        actual: String,
    },
    /// The directory already holds a key ring.
    #[error("{} already holds token keys; refusing to overwrite them", path.display())]
    Exists {
        /// The metadata file.
        path: PathBuf,
    },
    /// A key could not be generated, written or read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The keys break the rotation rules.
    #[error(transparent)]
    Ring(#[from] KeyRingError),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    version: u32,
    keys: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kid: String,
    published_at: u64,
    signs_from: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
}

/// A token key directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
    lead_time: Duration,
    max_token_lifetime: Duration,
}

impl KeyDir {
    /// The directory at `path`, with the rotation lead time and maximum token lifetime that
    /// govern its keys.
    pub fn new(path: &Path, lead_time: Duration, max_token_lifetime: Duration) -> Self {
        Self {
            path: path.to_owned(),
            lead_time,
            max_token_lifetime,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory (mode 0700) with a first key that signs from `now`.
    pub fn create(&self, now: SystemTime) -> Result<KeyRing, KeyDirError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| self.io(&self.path, source))?;
        let metadata = self.path.join(METADATA_FILE);
        if metadata.exists() {
            return Err(KeyDirError::Exists { path: metadata });
        }
        let mut ring = KeyRing::new(self.lead_time, self.max_token_lifetime);
        self.rotate(&mut ring, now)?;
        Ok(ring)
    }

    /// Loads every key the metadata lists, checking each file's mode (0600), that each key's
    /// keyid is its kid, and the rotation rules.
    pub fn load(&self) -> Result<KeyRing, KeyDirError> {
        let path = self.path.join(METADATA_FILE);
        let text = fs::read(&path).map_err(|source| self.io(&path, source))?;
        let metadata: Metadata =
            serde_json::from_slice(&text).map_err(|source| KeyDirError::Metadata {
                path: path.clone(),
                source,
            })?;
        if metadata.version != METADATA_VERSION {
            return Err(KeyDirError::Version {
                path,
                found: metadata.version,
            });
        }
        let mut ring = KeyRing::new(self.lead_time, self.max_token_lifetime);
        for entry in metadata.keys {
            if !is_kid(&entry.kid) {
                return Err(KeyDirError::InvalidKid {
                    path,
                    kid: entry.kid,
                });
            }
            let key_path = self.path.join(format!("{}.key", entry.kid));
            let key = load_signing_key(&key_path)?;
            if key.keyid() != entry.kid {
                return Err(KeyDirError::KidMismatch {
                    path: key_path,
                    kid: entry.kid,
                    actual: key.keyid().to_owned(),
                });
            }
            let schedule = KeySchedule {
                published_at: entry.published_at,
                signs_from: entry.signs_from,
                retired_at: entry.retired_at,
            };
            ring.insert(TokenKey::new(key, schedule)?)?;
        }
        Ok(ring)
    }

    /// Generates the next key, publishes it from `now`, retires the current one when the new
    /// one starts signing (after the lead time), and saves the ring. `ring` changes only if
    /// everything was written. Returns the new kid.
    pub fn rotate(&self, ring: &mut KeyRing, now: SystemTime) -> Result<String, KeyDirError> {
        let key = SigningKey::generate()?;
        let mut next = ring.clone();
        let kid = next.rotate(key.clone(), now)?;
        let (private, public) = write_key_files(&key, &self.path, &kid)?;
        // The key files reach the disk before the metadata that names them.
        for file in [&private, &public] {
            self.sync(file)?;
        }
        self.save(&next)?;
        *ring = next;
        Ok(kid)
    }

    /// Drops keys no longer published at `now` from `ring` and the directory.
    pub fn prune(&self, ring: &mut KeyRing, now: SystemTime) -> Result<Vec<String>, KeyDirError> {
        let mut next = ring.clone();
        let gone = next.prune(now);
        self.save(&next)?;
        *ring = next;
        for kid in &gone {
            for ext in ["key", "pub"] {
                let file = self.path.join(format!("{kid}.{ext}"));
                match fs::remove_file(&file) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(self.io(&file, e));
                    }
                    _ => {}
                }
            }
        }
        Ok(gone)
    }

    /// Writes the metadata atomically (a temporary file renamed over the old one).
    fn save(&self, ring: &KeyRing) -> Result<(), KeyDirError> {
        let metadata = Metadata {
            version: METADATA_VERSION,
            keys: ring
                .keys()
                .iter()
                .map(|k| Entry {
                    kid: k.kid().to_owned(),
                    published_at: k.schedule().published_at,
                    signs_from: k.schedule().signs_from,
                    retired_at: k.schedule().retired_at,
                })
                .collect(),
        };
        let path = self.path.join(METADATA_FILE);
        let mut json =
            serde_json::to_vec_pretty(&metadata).map_err(|source| KeyDirError::Metadata {
                path: path.clone(),
                source,
            })?;
        json.push(b'\n');
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.path).map_err(|e| self.io(&self.path, e))?;
        tmp.write_all(&json).map_err(|e| self.io(tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| self.io(&path, e.error))?;
        // Make the rename itself durable.
        self.sync(&self.path)?;
        Ok(())
    }

    /// fsyncs a file or directory.
    fn sync(&self, path: &Path) -> Result<(), KeyDirError> {
        fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| self.io(path, e))
    }

    fn io(&self, path: &Path, source: io::Error) -> KeyDirError {
        KeyDirError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn is_kid(kid: &str) -> bool {
    kid.len() == 64 && kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::UNIX_EPOCH;

    const LEAD: Duration = Duration::from_secs(3600);
    const MAX: Duration = Duration::from_secs(300);

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn create_rotate_load_round_trip_with_private_files_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::new(&tmp.path().join("token-keys"), LEAD, MAX);
        let mut ring = dir.create(at(1000)).unwrap();
        let first = ring.signing_key(at(1000)).unwrap().kid().to_owned();
        let second = dir.rotate(&mut ring, at(2000)).unwrap();

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        for kid in [&first, &second] {
            assert_eq!(mode(&dir.path().join(format!("{kid}.key"))), 0o600);
        }

        let loaded = dir.load().unwrap();
        let kids = |r: &KeyRing, t| {
            r.published(at(t))
                .map(|k| k.kid().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(&loaded, 2000), vec![first.clone(), second.clone()]);
        assert_eq!(loaded.signing_key(at(2000)).unwrap().kid(), first);
        assert_eq!(loaded.signing_key(at(2000 + 3600)).unwrap().kid(), second);

        // Pruned once the old key's tokens have all expired; its files go too.
        let gone = dir.prune(&mut ring, at(2000 + 3600 + 300)).unwrap();
        assert_eq!(gone, vec![first.clone()]);
        assert!(!dir.path().join(format!("{first}.key")).exists());
        assert_eq!(dir.load().unwrap().keys().len(), 1);

        assert!(matches!(
            dir.create(at(9999)),
            Err(KeyDirError::Exists { .. })
        ));
    }

    #[test]
    fn a_world_readable_key_or_a_swapped_key_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::new(tmp.path(), LEAD, MAX);
        let ring = dir.create(at(1000)).unwrap();
        let kid = ring.keys()[0].kid().to_owned();
        let key_path = tmp.path().join(format!("{kid}.key"));

        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            dir.load(),
            Err(KeyDirError::Key(KeyError::InsecurePermissions { .. }))
        ));
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();

        fs::remove_file(&key_path).unwrap();
        fs::remove_file(tmp.path().join(format!("{kid}.pub"))).unwrap();
        let other = SigningKey::generate().unwrap();
        write_key_files(&other, tmp.path(), &kid).unwrap();
        assert!(matches!(dir.load(), Err(KeyDirError::KidMismatch { .. })));
    }

    #[test]
    fn metadata_with_a_path_in_the_kid_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join(METADATA_FILE),
            r#"{"version":1,"keys":[{"kid":"../../etc/x","published_at":0,"signs_from":0}]}"#,
        )
        .unwrap();
        let dir = KeyDir::new(tmp.path(), LEAD, MAX);
        assert!(matches!(dir.load(), Err(KeyDirError::InvalidKid { .. })));
        fs::write(
            tmp.path().join(METADATA_FILE),
            r#"{"version":1,"keys":[],"x":1}"#,
        )
        .unwrap();
        assert!(matches!(dir.load(), Err(KeyDirError::Metadata { .. })));
    }
}
