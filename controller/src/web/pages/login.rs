//! `GET /login`: the login form. A visitor logs in with an API token (`admin.token` or a
//! token of `[[auth.clients]]`); the form posts to `/login` (`web::actions`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use maud::{Markup, html};

use crate::web::error::WebError;
use crate::web::session::Session;
use crate::web::{Shared, params};

/// `GET /login[?next=/path]`.
pub(crate) async fn page(
    State(web): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Markup, WebError> {
    let fields = params::fields(query.unwrap_or_default().as_bytes());
    let next = params::local_path(fields.get("next").map_or("/", String::as_str));
    let viewer = web.session(&headers).await?;
    Ok(render(next, None, viewer.as_ref()))
}

/// The login page, returning to `next`, with `error` from a failed attempt.
pub(crate) fn render(next: &str, error: Option<&str>, viewer: Option<&Session>) -> Markup {
    let body = html! {
        h1 { "Log in" }
        @if let Some(session) = viewer {
            p #logged-in { "You are logged in as " strong { (session.client.name) } ". "
                a href=(next) { "Continue" } }
        }
        @if let Some(error) = error {
            p.error #login-error { (error) }
        }
        form.login #login method="post" action="/login" {
            label for="token" { "API token (admin.token, or a client token of [[auth.clients]])" }
            input #token type="password" name="token" autocomplete="current-password" required;
            input type="hidden" name="next" value=(next);
            button #login-submit type="submit" { "Log in" }
        }
        p.note { "The token is checked like a gRPC client's bearer token; only a session id is kept in a cookie." }
    };
    super::layout("Log in", viewer, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::pages::tests::{HOSTILE, assert_escaped};

    #[test]
    fn the_form_posts_the_token_and_where_to_return() {
        let page = render("/jobs/x", Some(HOSTILE), None).into_string();
        assert!(page.contains(r#"<form class="login" id="login" method="post" action="/login">"#));
        assert!(page.contains(r#"type="password" name="token""#));
        assert!(page.contains(r#"name="next" value="/jobs/x""#));
        assert_escaped(&page);
    }
}
