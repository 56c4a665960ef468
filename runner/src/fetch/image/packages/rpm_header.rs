//! RPM header blobs (as rpmdb stores them, without the lead): the fields a package needs.
//!
//! Layout: `il` (u32 BE index entries), `dl` (u32 BE data bytes), `il` entries of 16 bytes
//! (tag, type, offset, count; u32 BE each), then `dl` bytes of data. Every offset is
//! bounds-checked against the data store; nothing here can panic on a hostile blob.

use super::{MAX_FIELD_LEN, OsPackage, PackageManager};

/// `RPMTAG_NAME`.
const TAG_NAME: u32 = 1000;
/// `RPMTAG_VERSION`.
const TAG_VERSION: u32 = 1001;
/// `RPMTAG_RELEASE`.
const TAG_RELEASE: u32 = 1002;
/// `RPMTAG_EPOCH` (INT32).
const TAG_EPOCH: u32 = 1003;
/// `RPMTAG_LICENSE`.
const TAG_LICENSE: u32 = 1014;
/// `RPMTAG_ARCH`.
const TAG_ARCH: u32 = 1022;
/// `RPMTAG_SOURCERPM`.
const TAG_SOURCERPM: u32 = 1044;
/// `RPM_INT32_TYPE`.
const TYPE_INT32: u32 = 4;
/// `RPM_STRING_TYPE`.
const TYPE_STRING: u32 = 6;
/// `RPM_I18NSTRING_TYPE` (first string is the untranslated one).
const TYPE_I18NSTRING: u32 = 9;
/// rpm's own limit on index entries (`HEADER_TAGS_MAX`).
const MAX_ENTRIES: usize = 0xffff;
/// The name of the pseudo packages that hold imported signing keys.
pub(super) const GPG_PUBKEY: &str = "gpg-pubkey";

/// A parsed header's index and data store.
#[derive(Debug)]
struct Header<'a> {
    /// The index entries.
    index: &'a [u8],
    /// The data store.
    data: &'a [u8],
}

/// The package a header describes; `Ok(None)` for a `gpg-pubkey` pseudo package.
pub(super) fn package(blob: &[u8]) -> Result<Option<OsPackage>, String> {
    let header = Header::parse(blob)?;
    let name = header.required_string(TAG_NAME, "NAME")?;
    if name == GPG_PUBKEY {
        return Ok(None);
    }
    let version = header.required_string(TAG_VERSION, "VERSION")?;
    let release = header.required_string(TAG_RELEASE, "RELEASE")?;
    let version = match header.int32(TAG_EPOCH)? {
        Some(epoch) => format!("{epoch}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let source_name = header.string(TAG_SOURCERPM)?.and_then(source_rpm_name);
    Ok(Some(OsPackage {
        manager: PackageManager::Rpm,
        name: name.to_owned(),
        version,
        architecture: header.string(TAG_ARCH)?.map(str::to_owned),
        source_name: source_name.map(str::to_owned),
        source_version: None,
        licenses: header
            .string(TAG_LICENSE)?
            .map(str::to_owned)
            .into_iter()
            .collect(),
    }))
}

/// The name part of `name-version-release.src.rpm`; `None` if it has no such shape.
fn source_rpm_name(file: &str) -> Option<&str> {
    let stem = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))?;
    let (rest, _release) = stem.rsplit_once('-')?;
    let (name, _version) = rest.rsplit_once('-')?;
    (!name.is_empty()).then_some(name)
}

/// A big-endian u32 at `at`, if in bounds.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw))
}

impl<'a> Header<'a> {
    /// Checks the header's framing and splits it into index and data.
    fn parse(blob: &'a [u8]) -> Result<Self, String> {
        let il = be32(blob, 0).ok_or("blob is shorter than a header")?;
        let dl = be32(blob, 4).ok_or("blob is shorter than a header")?;
        let il = usize::try_from(il).map_err(|_| "index count overflows")?;
        let dl = usize::try_from(dl).map_err(|_| "data length overflows")?;
        if il == 0 || il > MAX_ENTRIES {
            return Err(format!("index count {il} is out of range"));
        }
        let index_end = il
            .checked_mul(16)
            .and_then(|n| n.checked_add(8))
            .ok_or("index overflows")?;
        let data_end = index_end.checked_add(dl).ok_or("data overflows")?;
        let index = blob.get(8..index_end).ok_or("index is truncated")?;
        let data = blob
            .get(index_end..data_end)
            .ok_or("data store is truncated")?;
        Ok(Self { index, data })
    }

    /// The `(type, offset, count)` of the first entry for `tag`.
    fn entry(&self, tag: u32) -> Option<(u32, usize, u32)> {
        self.index.chunks_exact(16).find_map(|e| {
            if be32(e, 0)? != tag {
                return None;
            }
            let offset = usize::try_from(be32(e, 8)?).ok()?;
            Some((be32(e, 4)?, offset, be32(e, 12)?))
        })
    }

    /// A STRING (or the first I18NSTRING) tag's value, if present.
    fn string(&self, tag: u32) -> Result<Option<&'a str>, String> {
        let Some((kind, offset, _count)) = self.entry(tag) else {
            return Ok(None);
        };
        if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
            return Err(format!("tag {tag} has type {kind}, not a string"));
        }
        let rest = self
            .data
            .get(offset..)
            .ok_or_else(|| format!("tag {tag} points outside the data store"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("tag {tag} is not NUL-terminated"))?;
        let bytes = rest.get(..end).unwrap_or_default();
        if bytes.len() > MAX_FIELD_LEN {
            return Err(format!("tag {tag} is longer than {MAX_FIELD_LEN} bytes"));
        }
        let value = std::str::from_utf8(bytes).map_err(|_| format!("tag {tag} is not UTF-8"))?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// A string tag that must be present and non-empty.
    fn required_string(&self, tag: u32, what: &str) -> Result<&'a str, String> {
        self.string(tag)?
            .ok_or_else(|| format!("header has no {what}"))
    }

    /// The first value of an INT32 tag, if present.
    fn int32(&self, tag: u32) -> Result<Option<u32>, String> {
        let Some((kind, offset, count)) = self.entry(tag) else {
            return Ok(None);
        };
        if kind != TYPE_INT32 || count == 0 {
            return Err(format!("tag {tag} is not an INT32"));
        }
        be32(self.data, offset)
            .map(Some)
            .ok_or_else(|| format!("tag {tag} points outside the data store"))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Builds a header blob from `(tag, value)` pairs: strings as STRING, `u32` as INT32.
    pub(in super::super) fn blob(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        let entry = |tag: u32, kind: u32, offset: usize, index: &mut Vec<u8>| {
            for v in [tag, kind, u32::try_from(offset).expect("offset"), 1] {
                index.extend_from_slice(&v.to_be_bytes());
            }
        };
        if let Some(epoch) = epoch {
            entry(TAG_EPOCH, TYPE_INT32, data.len(), &mut index);
            data.extend_from_slice(&epoch.to_be_bytes());
        }
        for (tag, value) in strings {
            entry(*tag, TYPE_STRING, data.len(), &mut index);
            data.extend_from_slice(value.as_bytes());
            data.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(index.len() / 16).expect("il").to_be_bytes());
        out.extend_from_slice(&u32::try_from(data.len()).expect("dl").to_be_bytes());
        out.extend_from_slice(&index);
        out.extend_from_slice(&data);
        out
    }

    /// A header for glibc as Fedora has it.
    pub(in super::super) fn glibc(epoch: Option<u32>) -> Vec<u8> {
        blob(
            &[
                (TAG_NAME, "glibc"),
                (TAG_VERSION, "2.38"),
                (TAG_RELEASE, "16.fc39"),
                (TAG_LICENSE, "LGPL-2.1-or-later AND GPL-2.0-or-later"),
                (TAG_ARCH, "x86_64"),
                (TAG_SOURCERPM, "glibc-2.38-16.fc39.src.rpm"),
            ],
            epoch,
        )
    }

    #[test]
    fn header_fields() {
        let p = package(&glibc(None)).expect("parse").expect("a package");
        assert_eq!(p.name, "glibc");
        assert_eq!(p.version, "2.38-16.fc39");
        assert_eq!(p.architecture.as_deref(), Some("x86_64"));
        assert_eq!(p.source_name.as_deref(), Some("glibc"));
        assert_eq!(p.source_version, None);
        assert_eq!(p.licenses, ["LGPL-2.1-or-later AND GPL-2.0-or-later"]);
        let p = package(&glibc(Some(2))).expect("parse").expect("a package");
        assert_eq!(p.version, "2:2.38-16.fc39");
    }

    #[test]
    fn gpg_pubkey_is_skipped() {
        let key = blob(
            &[
                (TAG_NAME, GPG_PUBKEY),
                (TAG_VERSION, "18b8e74c"),
                (TAG_RELEASE, "62f2920f"),
            ],
            None,
        );
        assert_eq!(package(&key).expect("parse"), None);
    }

    #[test]
    fn hostile_blobs_are_errors_not_panics() {
        let good = glibc(Some(1));
        for cut in 0..good.len() {
            let _ = package(&good[..cut]);
        }
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(package(&huge).is_err());
        let mut wild = good.clone();
        // First entry's offset far outside the data store.
        wild[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(package(&wild).is_err());
        assert!(
            package(&blob(&[(TAG_NAME, "x")], None)).is_err(),
            "no VERSION"
        );
        assert_eq!(
            source_rpm_name("python3.12-3.12.1-2.fc39.src.rpm"),
            Some("python3.12")
        );
        assert_eq!(source_rpm_name("weird.rpm"), None);
    }
}
