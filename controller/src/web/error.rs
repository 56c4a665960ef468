//! Why a web request failed, and how each failure looks: an HTML page with the right status
//! (or a redirect to the login form), or `{"error": ...}` for the JSON endpoints.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::status::ApiError;
use crate::auth::secret::RandomError;
use crate::store::StoreError;
use crate::web::csrf::CsrfError;

/// Why a web request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The page needs a login (`[web] anonymous_read` is off): redirect to the form, which
    /// comes back to `next` afterwards.
    #[error("log in to see this page")]
    LoginRequired {
        /// The local path to return to.
        next: String,
    },
    /// A JSON endpoint was called without a login.
    #[error("not logged in: log in at /login first")]
    Unauthorized,
    /// A state-changing request failed its same-origin or CSRF check.
    #[error("refused: {0}")]
    Csrf(#[from] CsrfError),
    /// The client may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such job (or page).
    #[error("{0}")]
    NotFound(String),
    /// A malformed parameter; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// The job logic failed.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The database failed.
    #[error("controller storage failed: {0}")]
    Store(#[from] StoreError),
    /// No session id could be generated.
    #[error("{0}")]
    Random(#[from] RandomError),
}

impl WebError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Csrf(_) | WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Api(e) => match e.code() {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            WebError::Store(StoreError::JobNotFound(_)) => StatusCode::NOT_FOUND,
            WebError::Store(_) | WebError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the visitor is told: the message, except for internal failures (logged here,
    /// shown only as such).
    fn public_message(&self) -> String {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "web request failed");
            "the controller failed to answer; its log says why".to_owned()
        } else {
            if matches!(self, WebError::Csrf(_)) {
                tracing::warn!(error = %self, "refused a web request");
            }
            self.to_string()
        }
    }

    /// The failure as JSON (for `/jobs/{id}/events`).
    pub(crate) fn into_json(self) -> Response {
        let status = match self.status() {
            StatusCode::SEE_OTHER => StatusCode::UNAUTHORIZED,
            other => other,
        };
        let body = serde_json::json!({ "error": self.public_message() }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::LoginRequired { next } = &self {
            let target = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            return Redirect::to(&format!("/login?{target}")).into_response();
        }
        let status = self.status();
        let message = self.public_message();
        let page = crate::web::pages::error_page(status, &message);
        (status, page).into_response()
    }
}
