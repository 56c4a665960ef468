//! The state-changing POSTs: `/login`, `/logout` and `/jobs/{id}/cancel`. Each is refused
//! unless it comes from this origin; logout and cancel also need the session's CSRF token.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::web::error::WebError;
use crate::web::{Shared, csrf, pages, params, session};

/// `POST /login` (`token`, `next`): a known API token starts a session and returns to
/// `next`; an unknown one shows the form again with 401.
pub(crate) async fn login(
    State(web): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    // Login CSRF: a foreign page must not log the visitor in as someone else.
    web.origins.check(&headers)?;
    let fields = params::fields(&body);
    let next = params::local_path(fields.get("next").map_or("/", String::as_str)).to_owned();
    let token = fields.get("token").map_or("", |t| t.trim());
    let Some(client) = (!token.is_empty())
        .then(|| web.auth.authenticate(token))
        .flatten()
    else {
        // Never log the token, nor its digest.
        tracing::warn!("rejected a web login with an unknown API token");
        let page = pages::login::render(
            &next,
            Some("That token belongs to no configured client."),
            None,
        );
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    let cookie = web.start_session(&client).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

/// `POST /logout` (`csrf`): ends the session and clears the cookie.
pub(crate) async fn logout(
    State(web): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    web.origins.check(&headers)?;
    if let Some(session) = web.session(&headers).await? {
        let fields = params::fields(&body);
        csrf::check_token(&session.csrf_token, fields.get("csrf").map(String::as_str))?;
        web.scheduler
            .store()
            .delete_web_session(&session.id_sha256)
            .await?;
        tracing::info!(client = %session.client.name, "web logout");
    }
    Ok((
        [(
            header::SET_COOKIE,
            session::clear_cookie(web.secure_cookies),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

/// `POST /jobs/{id}/cancel` (`csrf`): asks the job to stop, for a client that may cancel
/// it, and returns to the job page.
pub(crate) async fn cancel(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    web.origins.check(&headers)?;
    let id = params::job_id(&raw)?;
    let Some(session) = web.session(&headers).await? else {
        return Err(WebError::Forbidden(
            "log in with a client that may cancel this job first".into(),
        ));
    };
    let fields = params::fields(&body);
    csrf::check_token(&session.csrf_token, fields.get("csrf").map(String::as_str))?;
    let profile = web.scheduler.job(id).await?.profile;
    session
        .client
        .require_cancel(&profile)
        .map_err(|status| WebError::Forbidden(status.message().to_owned()))?;
    let reason = format!("by client `{}` on the web page", session.client.name);
    let state = web.scheduler.cancel(id, &reason).await?;
    tracing::info!(job_id = %id, client = %session.client.name, %state, "cancel requested on the web page");
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}
