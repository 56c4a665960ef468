//! The attestations of a registry image: its OCI referrers of `artifactType`
//! `application/vnd.dsse.envelope.v1+json`, as `airlock push` attaches them. The referrers API
//! (`GET /v2/<name>/referrers/<digest>`) is asked first; a registry without it (404, 400 or
//! 405) is read through the referrers tag schema instead, the image index at the tag
//! `sha256-<hex>`. Each DSSE referrer's manifest is fetched by its digest and checked (its
//! bytes hash to that digest, its `subject` is the image), then each of its DSSE layers, the
//! envelope, by digest and size, capped at [`LookupLimits::max_envelope_bytes`].

use airlock_attest::Sha256Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::{Lookup, LookupLimits, Refusal};
use crate::fetch::http::HttpError;
use crate::fetch::image::blob::{MAX_JSON_BLOB_BYTES, descriptor_digest};
use crate::fetch::image::registry::{
    DSSE_ENVELOPE_MEDIA_TYPE, RegistryClient, RegistryError, RegistryRepo, referrers_tag,
};

fn is_dsse(media_type: Option<&MediaType>) -> bool {
    media_type.is_some_and(|t| t.to_string() == DSSE_ENVELOPE_MEDIA_TYPE)
}

/// Whether an error fetching a candidate is the registry's or network's (retry) rather than
/// the content's.
fn transient(e: &RegistryError) -> bool {
    !e.is_job_error() && !matches!(e, RegistryError::Http(HttpError::TooLarge { .. }))
}

/// Finds the DSSE referrers of `subject` in `repo`. `Err` only when the referrers list itself
/// could not be fetched; everything wrong with a referrer is a refusal.
pub(super) fn referrers_of(
    client: &RegistryClient,
    repo: &RegistryRepo,
    subject: &Sha256Digest,
    limits: &LookupLimits,
) -> Result<Lookup, RegistryError> {
    let what = format!(
        "OCI referrers of {repo}@{} with artifactType {DSSE_ENVELOPE_MEDIA_TYPE}",
        subject.prefixed()
    );
    let (index, looked_for) = match client.referrers(repo, subject, DSSE_ENVELOPE_MEDIA_TYPE)? {
        Some(bytes) => (Some(bytes), format!("{what} (referrers API)")),
        None => {
            let tag = referrers_tag(subject);
            let looked_for = format!("{what} (no referrers API: the referrers tag {repo}:{tag})");
            match client.manifest(repo, &tag) {
                Ok((bytes, _)) => (Some(bytes), looked_for),
                Err(RegistryError::Status { status: 404, .. }) => (None, looked_for),
                Err(e) => return Err(e),
            }
        }
    };
    let mut lookup = Lookup {
        looked_for,
        ..Lookup::default()
    };
    let Some(index) = index else {
        return Ok(lookup);
    };
    let index = match ImageIndex::from_reader(index.as_slice()) {
        Ok(i) => i,
        Err(e) => {
            lookup.refuse("the referrers list", format!("not an OCI image index: {e}"));
            return Ok(lookup);
        }
    };
    let mut others = 0usize;
    for desc in index.manifests() {
        if !is_dsse(desc.artifact_type().as_ref()) {
            others += 1;
            continue;
        }
        let origin = format!("referrer {}", desc.digest());
        if lookup.is_full(limits) {
            lookup.not_examined(limits, origin);
            continue;
        }
        examine(client, repo, subject, desc, &origin, limits, &mut lookup);
    }
    if others > 0 {
        lookup.looked_for.push_str(&format!(
            "; {others} referrer(s) of other artifact types ignored"
        ));
    }
    Ok(lookup)
}

/// Fetches and checks one DSSE referrer; offers its envelopes or records why not.
fn examine(
    client: &RegistryClient,
    repo: &RegistryRepo,
    subject: &Sha256Digest,
    desc: &Descriptor,
    origin: &str,
    limits: &LookupLimits,
    lookup: &mut Lookup,
) {
    let layers = match envelope_layers(client, repo, subject, desc) {
        Ok(l) => l,
        Err((reason, transient)) => {
            lookup.refused.push(Refusal {
                origin: origin.to_owned(),
                reason,
                transient,
            });
            return;
        }
    };
    for layer in layers {
        let origin = format!("{origin} layer {}", layer.digest());
        match envelope(client, repo, &layer, limits) {
            Ok(bytes) => lookup.offer(limits, origin, bytes),
            Err((reason, transient)) => lookup.refused.push(Refusal {
                origin,
                reason,
                transient,
            }),
        }
    }
}

/// The DSSE layers of the referrer `desc` lists, once its manifest is fetched by digest,
/// verified, and found to name `subject`. Else why not, and whether that is transient.
fn envelope_layers(
    client: &RegistryClient,
    repo: &RegistryRepo,
    subject: &Sha256Digest,
    desc: &Descriptor,
) -> Result<Vec<Descriptor>, (String, bool)> {
    let digest = descriptor_digest("the referrer", desc).map_err(|e| (e.to_string(), false))?;
    if *desc.media_type() != MediaType::ImageManifest {
        return Err((
            format!(
                "listed as a {:?}, not an OCI image manifest",
                desc.media_type().to_string()
            ),
            false,
        ));
    }
    if desc.size() > MAX_JSON_BLOB_BYTES {
        return Err((
            format!(
                "listed as {} bytes, more than a manifest may have",
                desc.size()
            ),
            false,
        ));
    }
    let (bytes, _) = client
        .manifest(repo, &digest.prefixed())
        .map_err(|e| (e.to_string(), transient(&e)))?;
    let actual = Sha256Digest::of(&bytes);
    if actual != digest {
        return Err((
            format!(
                "the registry served a manifest hashing to {}",
                actual.prefixed()
            ),
            false,
        ));
    }
    let manifest = ImageManifest::from_reader(bytes.as_slice())
        .map_err(|e| (format!("not an OCI image manifest: {e}"), false))?;
    let named = manifest
        .subject()
        .as_ref()
        .map(|s| s.digest().to_string())
        .unwrap_or_default();
    if named != subject.prefixed() {
        return Err((
            format!(
                "its subject is {named:?}, not the image {}",
                subject.prefixed()
            ),
            false,
        ));
    }
    let layers: Vec<Descriptor> = manifest
        .layers()
        .iter()
        .filter(|l| is_dsse(Some(l.media_type())))
        .cloned()
        .collect();
    if layers.is_empty() {
        return Err((
            format!("it has no layer of media type {DSSE_ENVELOPE_MEDIA_TYPE}"),
            false,
        ));
    }
    Ok(layers)
}

/// The envelope blob a referrer layer names, fetched by digest, at most its listed size and
/// the cap, verified.
fn envelope(
    client: &RegistryClient,
    repo: &RegistryRepo,
    layer: &Descriptor,
    limits: &LookupLimits,
) -> Result<Vec<u8>, (String, bool)> {
    let digest =
        descriptor_digest("the envelope layer", layer).map_err(|e| (e.to_string(), false))?;
    if layer.size() > limits.max_envelope_bytes {
        return Err((
            format!(
                "the envelope is listed as {} bytes, larger than the {} bytes an attestation \
                 may have",
                layer.size(),
                limits.max_envelope_bytes
            ),
            false,
        ));
    }
    let mut bytes = Vec::new();
    client
        .blob(repo, &digest, layer.size(), &mut bytes, &mut |_| {})
        .map_err(|e| (e.to_string(), transient(&e)))?;
    let actual = Sha256Digest::of(&bytes);
    if actual != digest {
        return Err((
            format!(
                "the registry served an envelope hashing to {}",
                actual.prefixed()
            ),
            false,
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use airlock_attest::SigningKey;

    use super::super::tests::{envelope_for, trust};
    use super::super::{CheckedImage, ImageCheckError, check_image};
    use super::*;
    use crate::fetch::http::HttpClient;
    use crate::fetch::image::registry::{
        LayoutImage, RegistryAuth, attach_provenance, fake_registry, push_layout,
    };

    const SLSA: &str = "https://slsa.dev/provenance/v1";

    struct Pushed {
        client: RegistryClient,
        repo: RegistryRepo,
        image: LayoutImage,
        stored: std::sync::Arc<std::sync::Mutex<fake_registry::Stored>>,
        _tmp: tempfile::TempDir,
    }

    fn pushed(referrers_api: bool, layer: &[u8]) -> Pushed {
        let (addr, stored) = fake_registry::start();
        stored.lock().unwrap().referrers_api = referrers_api;
        let tmp = tempfile::tempdir().unwrap();
        crate::fetch::image::registry::write_layout(tmp.path(), b"{\"os\":\"linux\"}", &[layer]);
        let image = LayoutImage::open(tmp.path()).unwrap();
        let repo = RegistryRepo::parse(&format!("{addr}/app")).unwrap();
        let client = RegistryClient::new(HttpClient::new(), RegistryAuth::anonymous());
        push_layout(&client, &image, &repo, Some("v1"), &mut |_| {}).unwrap();
        Pushed {
            client,
            repo,
            image,
            stored,
            _tmp: tmp,
        }
    }

    impl Pushed {
        fn attach(&self, envelope: &[u8]) -> Sha256Digest {
            let subject = self.image.descriptor().unwrap();
            attach_provenance(&self.client, &self.repo, &subject, envelope, SLSA)
                .unwrap()
                .referrer
        }
        fn checked(&self) -> CheckedImage {
            CheckedImage::Registry {
                repo: self.repo.clone(),
                digest: self.image.digest(),
            }
        }
        fn lookup(&self, limits: &LookupLimits) -> Lookup {
            referrers_of(&self.client, &self.repo, &self.image.digest(), limits).unwrap()
        }
    }

    #[test]
    fn a_pushed_provenance_is_found_through_the_referrers_tag_and_the_api() {
        let key = SigningKey::generate().unwrap();
        for api in [false, true] {
            let p = pushed(api, b"layer");
            let envelope = envelope_for(&p.image.digest(), &key);
            let referrer = p.attach(&envelope);
            if api {
                let st = p.stored.lock().unwrap();
                assert!(
                    !st.manifests
                        .contains_key(&format!("sha256-{}", p.image.digest().hex())),
                    "with the API, push writes no tag"
                );
            }
            let v = check_image(
                &p.checked(),
                &p.client,
                &trust(&[&key]),
                &LookupLimits::default(),
            )
            .unwrap();
            assert_eq!(v.keyid, key.keyid());
            assert_eq!(v.envelope_digest, Sha256Digest::of(&envelope));
            assert!(v.origin.contains(&referrer.prefixed()), "{v}");
            let looked = p.lookup(&LookupLimits::default()).looked_for;
            assert_eq!(looked.contains("referrers API)"), api, "{looked}");
            assert_eq!(looked.contains("referrers tag"), !api, "{looked}");

            // Another key's signature vouches for nothing.
            let other = SigningKey::generate().unwrap();
            let e = check_image(
                &p.checked(),
                &p.client,
                &trust(&[&other]),
                &LookupLimits::default(),
            )
            .unwrap_err();
            assert!(e.is_job_error());
            assert!(e.to_string().contains("none of them is trusted"), "{e}");
        }
    }

    #[test]
    fn no_referrers_oversized_tampered_and_foreign_referrers_are_refused() {
        let key = SigningKey::generate().unwrap();
        let p = pushed(false, b"layer");
        // Nothing attached: the tag is absent, nothing found.
        let e = check_image(
            &p.checked(),
            &p.client,
            &trust(&[&key]),
            &LookupLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().ends_with("found none"), "{e}");
        assert!(e.is_job_error());

        // An envelope over the cap is never fetched.
        let envelope = envelope_for(&p.image.digest(), &key);
        p.attach(&envelope);
        let small = LookupLimits {
            max_envelope_bytes: 100,
            ..LookupLimits::default()
        };
        let l = p.lookup(&small);
        assert!(l.candidates.is_empty());
        assert!(
            l.refused[0].reason.contains("larger than the 100 bytes"),
            "{l:?}"
        );

        // The registry swaps the envelope's bytes: refused by digest.
        let blob = Sha256Digest::of(&envelope).prefixed();
        p.stored
            .lock()
            .unwrap()
            .blobs
            .insert(blob.clone(), b"{\"swapped\":true}".to_vec());
        let l = p.lookup(&LookupLimits::default());
        assert!(l.candidates.is_empty(), "{l:?}");
        assert!(l.refused[0].reason.contains("hashing to"), "{l:?}");
        assert!(!l.refused[0].transient);

        // A referrer of another image listed under this image's tag, and an artifact of
        // another type: the first refused, the second ignored.
        let q = pushed(false, b"another layer");
        let foreign = envelope_for(&q.image.digest(), &key);
        let foreign_referrer = q.attach(&foreign);
        let tag = format!("sha256-{}", p.image.digest().hex());
        {
            let from = q.stored.lock().unwrap();
            let mut to = p.stored.lock().unwrap();
            let (t, bytes) = from.manifests[&foreign_referrer.prefixed()].clone();
            to.manifests
                .insert(foreign_referrer.prefixed(), (t, bytes.clone()));
            let mut index: serde_json::Value =
                serde_json::from_slice(&to.manifests[&tag].1).unwrap();
            let list = index["manifests"].as_array_mut().unwrap();
            list.clear();
            list.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": foreign_referrer.prefixed(),
                "size": bytes.len(),
                "artifactType": DSSE_ENVELOPE_MEDIA_TYPE,
            }));
            list.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": Sha256Digest::of(b"sbom").prefixed(),
                "size": 4,
                "artifactType": "application/spdx+json",
            }));
            let index = serde_json::to_vec(&index).unwrap();
            to.manifests.insert(
                tag.clone(),
                ("application/vnd.oci.image.index.v1+json".to_owned(), index),
            );
        }
        let e = check_image(
            &p.checked(),
            &p.client,
            &trust(&[&key]),
            &LookupLimits::default(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("1 referrer(s) of other artifact types ignored"),
            "{text}"
        );
        let ImageCheckError::NotVouched { refusals, .. } = e else {
            panic!("not NotVouched")
        };
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(
            refusals[0].reason.contains("its subject is"),
            "{refusals:?}"
        );

        // A tag holding something that is not an index: refused, not trusted.
        p.stored.lock().unwrap().manifests.insert(
            tag,
            (
                "application/vnd.oci.image.index.v1+json".to_owned(),
                b"[]".to_vec(),
            ),
        );
        let l = p.lookup(&LookupLimits::default());
        assert!(
            l.refused[0].reason.contains("not an OCI image index"),
            "{l:?}"
        );
    }

    #[test]
    fn a_registry_that_cannot_be_reached_is_an_infrastructure_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let repo = RegistryRepo::parse(&format!("{addr}/app")).unwrap();
        let client = RegistryClient::new(HttpClient::new(), RegistryAuth::anonymous());
        let key = SigningKey::generate().unwrap();
        let e = check_image(
            &CheckedImage::Registry {
                repo,
                digest: Sha256Digest::of(b"x"),
            },
            &client,
            &trust(&[&key]),
            &LookupLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ImageCheckError::Registry { .. }), "{e}");
        assert!(!e.is_job_error(), "{e}");
    }
}
