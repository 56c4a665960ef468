//! The controller's web pages, served on its listen address next to gRPC: the queue (`/`),
//! a job (`/jobs/{id}`, with a live tail polled from `/jobs/{id}/events`, its provenance
//! and a Cancel button), the runners (`/runners`), and logging in with an API token
//! (`/login`, `/logout`). See docs/web.md.
//!
//! Server-rendered HTML (maud escapes every value), one small script and one style sheet
//! embedded in the binary (`assets`), a strict Content-Security-Policy on every response
//! (`headers`). A login is a session (`session`, `access`): a random id in an `HttpOnly`,
//! `SameSite=Strict` cookie, only its sha256 stored, re-checked against its expiry and the
//! current `[auth]` clients on every request. Every state-changing POST must come from this
//! origin and, once logged in, carry the session's CSRF token (`csrf`).
//!
//! Layout: this file holds the router and its shared state; `access` finds who is asking
//! (and starts sessions); `pages` render HTML, `live` answers the live tail, `downloads`
//! serves provenance files, `actions` handles the POSTs.

mod access;
mod actions;
mod assets;
mod csrf;
mod downloads;
mod error;
mod format;
mod headers;
mod live;
mod pages;
mod params;
mod session;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::auth::clients::ClientAuth;
use crate::config::WebConfig;
use crate::scheduler::Scheduler;

pub use error::WebError;

/// The largest form body accepted (a login token, a CSRF token).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the web pages are built from.
#[derive(Debug)]
pub struct WebParts {
    /// The job logic and store.
    pub scheduler: Arc<Scheduler>,
    /// The job-API clients of `[auth]`: logins use their tokens, sessions their names.
    pub auth: ClientAuth,
    /// `[web]`.
    pub config: WebConfig,
    /// The pages' public base URL (`ControllerConfig::public_url`), without a trailing `/`.
    pub public_url: String,
    /// The controller terminates TLS itself (`[tls]`).
    pub tls: bool,
}

/// The shared state of every handler.
#[derive(Debug)]
pub(crate) struct Web {
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) auth: ClientAuth,
    pub(crate) anonymous_read: bool,
    pub(crate) session_lifetime: Duration,
    /// What a same-origin request's `Origin` may be.
    pub(crate) origins: csrf::Origins,
    /// The public URL is https: cookies get `Secure`.
    pub(crate) secure_cookies: bool,
}

impl Web {
    pub(crate) fn new(parts: WebParts) -> Self {
        Self {
            scheduler: parts.scheduler,
            auth: parts.auth,
            anonymous_read: parts.config.anonymous_read,
            session_lifetime: parts.config.session_lifetime.0,
            origins: csrf::Origins::new(&parts.public_url, parts.tls),
            secure_cookies: parts.public_url.starts_with("https://"),
        }
    }
}

/// The handlers' state.
pub(crate) type Shared = Arc<Web>;

/// The web routes, to merge into the controller's HTTP router.
pub fn routes(parts: WebParts) -> Router {
    let web: Shared = Arc::new(Web::new(parts));
    Router::new()
        .route("/", get(pages::queue::page))
        .route("/runners", get(pages::runners::page))
        .route("/jobs/{id}", get(pages::job::page))
        .route("/jobs/{id}/events", get(live::events))
        .route(
            "/jobs/{id}/provenance.intoto.jsonl",
            get(downloads::envelope),
        )
        .route(
            "/jobs/{id}/provenance.sigstore.json",
            get(downloads::bundle),
        )
        .route("/jobs/{id}/sbom.spdx.json", get(downloads::spdx))
        .route("/jobs/{id}/sbom.cdx.json", get(downloads::cyclonedx))
        .route(
            "/jobs/{id}/sbom.intoto.jsonl",
            get(downloads::sbom_envelope),
        )
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route("/login", get(pages::login::page).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/app.css", get(assets::style))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(headers::secure))
        .with_state(web)
}
