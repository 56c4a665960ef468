//! Submit-time pinning for the client: a git `ref` becomes the commit it names now (`git
//! ls-remote`), an image tag becomes the digest of the manifest it names now (hashed by the
//! client, not taken from a registry header), an image layout without a digest becomes the
//! digest of the one manifest its `index.json` names now (verified). The spec records both.

use airlock_attest::GitCommit;
use airlock_job::Resolver;
use airlock_runner::fetch::git_source::{GitTransports, resolve_ref};
use airlock_runner::fetch::http::HttpClient;
use airlock_runner::fetch::image::registry::{
    RegistryAuth, RegistryClient, RegistryRepo, split_tag,
};

/// Resolves refs and tags over the network, printing each pin to stderr.
#[derive(Debug, Default)]
pub struct CliResolver;

impl Resolver for CliResolver {
    fn git_ref(&mut self, url: &str, git_ref: &str) -> Result<GitCommit, String> {
        // The user's own machine: local repositories are fine to read here.
        let commit =
            resolve_ref(url, git_ref, GitTransports::NetworkAndFile).map_err(|e| e.to_string())?;
        eprintln!("pinned git ref `{git_ref}` of {url} to commit {commit}");
        Ok(commit)
    }

    fn image_tag(&mut self, name_with_tag: &str) -> Result<String, String> {
        let (name, tag) = split_tag(name_with_tag);
        let tag = tag.ok_or_else(|| {
            "no tag and no digest; write NAME:TAG or NAME@sha256:<64 hex>".to_string()
        })?;
        let repo = RegistryRepo::parse(name).map_err(|e| e.to_string())?;
        let auth = RegistryAuth::from_default_location().map_err(|e| e.to_string())?;
        let client = RegistryClient::new(HttpClient::new(), auth);
        let digest = client.resolve_tag(&repo, tag).map_err(|e| e.to_string())?;
        let pinned = format!("{repo}@{}", digest.prefixed());
        eprintln!("pinned image {name_with_tag} to {pinned}");
        Ok(pinned)
    }

    fn image_layout(
        &mut self,
        dir: &std::path::Path,
    ) -> Result<airlock_attest::Sha256Digest, String> {
        let digest = airlock_runner::fetch::image::pin_layout(dir)?;
        eprintln!(
            "pinned image layout {} to {}",
            dir.display(),
            digest.prefixed()
        );
        Ok(digest)
    }
}
