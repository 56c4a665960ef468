//! A succeeded job's provenance as files: `/jobs/{id}/provenance.intoto.jsonl` (the DSSE
//! envelope, one JSON line) and `/jobs/{id}/provenance.sigstore.json` (the Sigstore bundle),
//! the same bytes `airlock fetch` writes. Readable like the job page.

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
    };
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
