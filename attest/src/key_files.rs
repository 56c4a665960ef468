//! Key files: a key pair written as `<name>.key` (PKCS#8 PEM, created mode 0600, never
//! overwritten) and `<name>.pub` (SPKI PEM), and private keys read only from files that
//! nobody else can open.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::keys::{KeyAlgorithm, KeyError, SigningKey, VerifyingKey, Zeroizing};

/// Mode of a private key file: owner read/write only.
const PRIVATE_KEY_MODE: u32 = 0o600;
/// Mode of a public key file.
const PUBLIC_KEY_MODE: u32 = 0o644;
/// Permission bits that must be clear on a private key file (any group/other access).
const PRIVATE_KEY_FORBIDDEN_BITS: u32 = 0o077;

/// Generates an ECDSA P-256 key and writes `<dir>/<name>.key` (PKCS#8 PEM, mode 0600) and
/// `<dir>/<name>.pub` (SPKI PEM, mode 0644). Returns (private path, public path).
pub fn write_keypair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), KeyError> {
    write_keypair_with(dir, name, KeyAlgorithm::EcdsaP256Sha256)
}

/// [`write_keypair`] for a key of `algorithm`.
pub fn write_keypair_with(
    dir: &Path,
    name: &str,
    algorithm: KeyAlgorithm,
) -> Result<(PathBuf, PathBuf), KeyError> {
    let key = SigningKey::generate_with(algorithm)?;
    write_key_files(&key, dir, name)
}

/// Writes an existing key as `<dir>/<name>.key` (0600) and `<dir>/<name>.pub` (0644), refusing
/// to overwrite either file. `dir` must exist.
pub fn write_key_files(
    key: &SigningKey,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, PathBuf), KeyError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(KeyError::InvalidName {
            name: name.to_owned(),
        });
    }
    let private_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    if public_path.exists() {
        return Err(KeyError::Exists { path: public_path });
    }
    let private_pem = key.to_pkcs8_pem()?;
    let public_pem = key.verifying_key().to_spki_pem()?;
    // The mode is given to open(2) itself so the secret is never in a file others can open,
    // not even briefly (a chmod after creating would leave a window). create_new also refuses
    // to follow a planted symlink.
    write_new_file(&private_path, PRIVATE_KEY_MODE, private_pem.as_bytes())?;
    if let Err(e) = write_new_file(&public_path, PUBLIC_KEY_MODE, public_pem.as_bytes()) {
        // Do not leave half a key pair behind. A failed cleanup is secondary to the write
        // error being returned, and the file it leaves is 0600.
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    Ok((private_path, public_path))
}

fn write_new_file(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeyError> {
    let io_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            KeyError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err)?;
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Reads a private key file (PEM text), refusing one that is not a regular file or that group
/// or others can access in any way (mode must be 0600 or stricter), as ssh does: such a key
/// may already be compromised. The text is wiped when dropped.
pub fn read_private_key_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    // Checked on the open handle, not the path, so the file checked is the file read.
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & PRIVATE_KEY_FORBIDDEN_BITS != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(io_err)?;
    Ok(text)
}

/// Loads a PKCS#8 PEM private key through [`read_private_key_file`] (mode 0600 or stricter).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(&read_private_key_file(path)?)
}

/// Loads an SPKI PEM public key.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    VerifyingKey::from_spki_pem(&text)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_files_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (priv_path, pub_path) = write_keypair(dir.path(), "builder").unwrap();
        assert_eq!(priv_path, dir.path().join("builder.key"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&priv_path), 0o600);
        assert_eq!(mode(&pub_path) & 0o600, 0o600);

        let key = load_signing_key(&priv_path).unwrap();
        let vk = load_verifying_key(&pub_path).unwrap();
        assert_eq!(key.verifying_key(), &vk);

        // Never overwrite.
        assert!(matches!(
            write_keypair(dir.path(), "builder"),
            Err(KeyError::Exists { .. })
        ));
        assert!(matches!(
            write_keypair(dir.path(), "../x"),
            Err(KeyError::InvalidName { .. })
        ));

        for bad in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            std::fs::set_permissions(&priv_path, std::fs::Permissions::from_mode(bad)).unwrap();
            let err = load_signing_key(&priv_path).unwrap_err();
            assert!(
                matches!(err, KeyError::InsecurePermissions { mode, .. } if mode == bad),
                "{bad:o}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("chmod 600") && msg.contains("builder.key"),
                "{msg}"
            );
        }
        std::fs::set_permissions(&priv_path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_signing_key(&priv_path).is_ok());

        let (ed_priv, ed_pub) =
            write_keypair_with(dir.path(), "ed", KeyAlgorithm::Ed25519).unwrap();
        assert_eq!(mode(&ed_priv), 0o600);
        let ed = load_signing_key(&ed_priv).unwrap();
        assert_eq!(ed.algorithm(), KeyAlgorithm::Ed25519);
        assert_eq!(ed.verifying_key(), &load_verifying_key(&ed_pub).unwrap());
        std::fs::set_permissions(&ed_priv, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_signing_key(&ed_priv),
            Err(KeyError::InsecurePermissions { .. })
        ));
        assert!(matches!(
            load_signing_key(dir.path()),
            Err(KeyError::NotAFile { .. })
        ));
    }
}
