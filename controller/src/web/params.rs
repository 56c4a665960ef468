//! Request parameters: `application/x-www-form-urlencoded` bodies and query strings, the
//! job id in a path, and the `next` path a login returns to.

use std::collections::HashMap;

use crate::ids::JobId;
use crate::web::error::WebError;

/// The fields of a form body or query string; the first value of a repeated name wins.
pub(crate) fn fields(bytes: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        out.entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// The job id of a `/jobs/{id}` path.
pub(crate) fn job_id(raw: &str) -> Result<JobId, WebError> {
    JobId::parse("job id", raw).map_err(|_| {
        WebError::NotFound("no such job: a job id is a UUID like the ones the queue links".into())
    })
}

/// An optional integer query parameter (`?before=<ms>`, `?after=<seq>`).
pub(crate) fn number<T: std::str::FromStr>(
    query: Option<&str>,
    name: &str,
) -> Result<Option<T>, WebError> {
    let fields = fields(query.unwrap_or_default().as_bytes());
    match fields.get(name) {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            WebError::BadRequest(format!("`{name}` must be a whole number, not `{text}`"))
        }),
    }
}

/// `next` if it is a path on this site (`/...`, not `//host` or `/\host`), else `/`: a
/// login never redirects elsewhere.
pub(crate) fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if ok { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_the_first_value_wins() {
        let f = fields(b"token=a%2Bb+c&next=%2Fjobs%2Fx&token=second");
        assert_eq!(f["token"], "a+b c");
        assert_eq!(f["next"], "/jobs/x");
        assert!(fields(b"").is_empty());
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(
            number::<i64>(Some("before=12"), "before").unwrap(),
            Some(12)
        );
        assert_eq!(number::<i64>(Some("x=1"), "before").unwrap(), None);
        assert_eq!(number::<i64>(None, "before").unwrap(), None);
        assert_eq!(number::<u64>(Some("after="), "after").unwrap(), None);
        let e = number::<u64>(Some("after=-1"), "after").unwrap_err();
        assert!(e.to_string().contains("`after`"), "{e}");
    }

    #[test]
    fn logins_only_return_to_local_paths() {
        for ok in ["/", "/jobs/x?y=1", "/runners"] {
            assert_eq!(local_path(ok), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn job_ids_are_uuids() {
        assert!(job_id("00000000-0000-4000-8000-000000000000").is_ok());
        assert!(matches!(job_id("<script>"), Err(WebError::NotFound(_))));
    }
}
