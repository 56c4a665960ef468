//! The script and style sheet of the pages, embedded in the binary (no CDN, nothing fetched
//! from elsewhere). They hold no job data, so browsers may cache them for a while.

use axum::http::header;
use axum::response::IntoResponse;

/// The live tail (`/assets/app.js`).
pub(crate) const SCRIPT: &str = include_str!("assets/app.js");

/// The style sheet (`/assets/app.css`).
pub(crate) const STYLE: &str = include_str!("assets/app.css");

/// How long browsers may keep an asset: a new controller version may change it.
const CACHE: &str = "public, max-age=300";

/// `GET /assets/app.js`.
pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        SCRIPT,
    )
}

/// `GET /assets/app.css`.
pub(crate) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_never_parses_text_as_html() {
        assert!(!SCRIPT.contains(".innerHTML") && !SCRIPT.contains(".outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML") && !SCRIPT.contains("eval("));
        assert!(SCRIPT.contains("/events?after="));
        assert!(STYLE.contains("#steps"));
    }
}
