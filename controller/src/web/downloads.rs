//! A succeeded job's provenance and SBOMs as files: `/jobs/{id}/provenance.intoto.jsonl` (the
//! DSSE envelope, one JSON line), `/jobs/{id}/provenance.sigstore.json` (the Sigstore bundle),
//! `/jobs/{id}/sbom.spdx.json`, `/jobs/{id}/sbom.cdx.json` and `/jobs/{id}/sbom.intoto.jsonl`
//! (the signed SBOM statement), the same bytes `airlock fetch` writes. Readable like the job
//! page.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::web::error::WebError;
use crate::web::{Shared, params};

/// Which document.
#[derive(Debug, Clone, Copy)]
enum Document {
    Envelope,
    Bundle,
    Spdx,
    CycloneDx,
    SbomEnvelope,
}

/// `GET /jobs/{id}/provenance.intoto.jsonl`.
pub(crate) async fn envelope(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    download(&web, &headers, &raw, Document::Envelope).await
}

/// `GET /jobs/{id}/provenance.sigstore.json`.
pub(crate) async fn bundle(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    download(&web, &headers, &raw, Document::Bundle).await
}

/// `GET /jobs/{id}/sbom.spdx.json`.
pub(crate) async fn spdx(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    download(&web, &headers, &raw, Document::Spdx).await
}

/// `GET /jobs/{id}/sbom.cdx.json`.
pub(crate) async fn cyclonedx(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    download(&web, &headers, &raw, Document::CycloneDx).await
}

/// `GET /jobs/{id}/sbom.intoto.jsonl`.
pub(crate) async fn sbom_envelope(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    download(&web, &headers, &raw, Document::SbomEnvelope).await
}

async fn download(
    web: &Shared,
    headers: &HeaderMap,
    raw: &str,
    document: Document,
) -> Result<Response, WebError> {
    let id = params::job_id(raw)?;
    web.reader(headers, &format!("/jobs/{id}")).await?;
    let name = file_stem(&web.scheduler.job(id).await?.name);
    let docs = web.scheduler.provenance(id).await?;
    let (body, content_type, file) = match document {
        Document::Envelope => (
            docs.envelope_json,
            "application/jsonl",
            format!("{name}.intoto.jsonl"),
        ),
        Document::Bundle => (
            docs.bundle_json,
            "application/json",
            format!("{name}.sigstore.json"),
        ),
        Document::Spdx => (
            docs.spdx_json,
            "application/spdx+json",
            format!("{name}.spdx.json"),
        ),
        Document::CycloneDx => (
            docs.cyclonedx_json,
            "application/vnd.cyclonedx+json",
            format!("{name}.cdx.json"),
        ),
        Document::SbomEnvelope => (
            docs.sbom_envelope_json,
            "application/jsonl",
            format!("{name}.sbom.intoto.jsonl"),
        ),
    };
    // A job that succeeded before SBOMs existed, or a gated job's provenance.
    if body.is_empty() {
        return Err(WebError::NotFound(format!("job {id} has no such document")));
    }
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The job name as a file name: only `[A-Za-z0-9._-]` (others become `_`), never empty or
/// hidden.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        format!("job{stem}")
    } else {
        stem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_tame() {
        assert_eq!(file_stem("hello-1.0"), "hello-1.0");
        assert_eq!(file_stem("a\"b/c\r\n"), "a_b_c__");
        assert_eq!(file_stem(""), "job");
        assert_eq!(file_stem(".hidden"), "job.hidden");
    }
}
