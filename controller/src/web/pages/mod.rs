//! The HTML pages: one file per page, each a handler that loads what it shows and a pure
//! `render` function over plain values (unit-tested), inside the shared [`layout`].
//!
//! Every value goes through maud's `(...)` splices, which escape `&`, `<`, `>` and `"`:
//! nothing a job, a step or a log says can become markup. No page has inline script or
//! style (the Content-Security-Policy forbids both).

pub(crate) mod job;
pub(crate) mod login;
mod provenance;
pub(crate) mod queue;
pub(crate) mod runners;

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use crate::web::session::Session;

/// A whole page: head (style sheet, script), the navigation with who is logged in, `body`.
pub(crate) fn layout(title: &str, viewer: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · airlock" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "airlock" }
                    a href="/" { "Queue" }
                    a href="/runners" { "Runners" }
                    span.who #whoami {
                        @if let Some(session) = viewer {
                            "Logged in as " strong #client { (session.client.name) } " "
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(session.csrf_token);
                                button #logout type="submit" { "Log out" }
                            }
                        } @else {
                            a #login-link href="/login" { "Log in" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The page of a failed request.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        title,
        None,
        html! {
            h1 { (status.as_u16()) " " (title) }
            p.error #error { (message) }
            p { a href="/" { "Back to the queue" } }
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::clients::AuthenticatedClient;
    use crate::auth::digest::TokenDigest;
    use crate::config::Role;

    /// The string the escaping tests put everywhere.
    pub(crate) const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(1)>";

    /// `HOSTILE` as maud writes it.
    pub(crate) const ESCAPED: &str =
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;";

    /// Checks that `html` holds `HOSTILE` only escaped.
    pub(crate) fn assert_escaped(html: &str) {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains(ESCAPED), "{html}");
    }

    pub(crate) fn session(name: &str, role: Role) -> Session {
        Session {
            client: Arc::new(AuthenticatedClient::new(name, role, None)),
            id_sha256: TokenDigest::of("id"),
            csrf_token: "csrf-token-value".into(),
        }
    }

    #[test]
    fn the_layout_links_only_its_own_assets_and_escapes_the_client_name() {
        let page = layout(HOSTILE, Some(&session("ci", Role::Read)), html! {}).into_string();
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains(r#"<script src="/assets/app.js" defer></script>"#));
        assert!(page.contains(r#"href="/assets/app.css""#));
        assert_eq!(page.matches("<script").count(), 1, "no inline script");
        assert!(!page.contains("style="), "no inline style");
        assert!(page.contains(r#"name="csrf" value="csrf-token-value""#));
        assert_escaped(&page);
        let anonymous = layout("t", None, html! {}).into_string();
        assert!(anonymous.contains(r#"href="/login""#) && !anonymous.contains("csrf"));
    }

    #[test]
    fn error_pages_escape_their_message() {
        let page = error_page(StatusCode::NOT_FOUND, HOSTILE).into_string();
        assert!(page.contains("404 Not Found"));
        assert_escaped(&page);
    }
}
