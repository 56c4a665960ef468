//! `POST /webhooks/<name>`: one forge delivery in, at most one job out.
//!
//! Order matters: the body is read up to the forge's cap (413 beyond), its signature checked
//! over those exact bytes (401, nothing stored), and only then parsed. A delivery whose
//! signed body was already queued (a redelivery or a replay) returns that job and queues
//! nothing. Answers are JSON; forges show them in their delivery logs.

use std::sync::Arc;

use airlock_attest::Sha256Digest;
use airlock_job::ForgeKind;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::api::{CommitStatus, StatusState};
use super::event::{ForgeEvent, Parsed};
use super::job_file::{JobFileRefused, spec_for};
use super::reporter::post_with_retries;
use super::{Forge, Forges, payload_github, payload_gitlab};
use crate::api::status::ApiError;
use crate::scheduler::Scheduler;

/// Longest delivery id accepted.
const MAX_DELIVERY_ID: usize = 128;

#[derive(Clone)]
struct Receiver {
    scheduler: Arc<Scheduler>,
    forges: Arc<Forges>,
}

/// The webhook route.
pub fn routes(scheduler: Arc<Scheduler>, forges: Arc<Forges>) -> Router {
    Router::new()
        .route("/webhooks/{name}", post(receive))
        .with_state(Receiver { scheduler, forges })
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({ "error": message.into() }))
}

async fn receive(
    State(receiver): State<Receiver>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(forge) = receiver.forges.get(&name) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no forge with this name is configured ([[forges]] name in controller.toml)",
        );
    };
    let limit = usize::try_from(forge.config.max_payload_bytes).unwrap_or(usize::MAX);
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than forges.max_payload_bytes ({limit} bytes) or was cut off"
            ),
        );
    };
    if let Err(e) = forge.secret.verify(forge.config.kind, &headers, &body) {
        tracing::warn!(forge = %name, error = %e, "webhook refused: not authentic");
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    // Authentic from here on, but still untrusted input: everything is parsed into types.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "set the webhook's content type to application/json",
        );
    }
    let delivery = match delivery_id(forge.config.kind, &headers) {
        Ok(id) => id,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let parsed = match forge.config.kind {
        ForgeKind::Gitlab => payload_gitlab::event_name(&headers)
            .and_then(|event| payload_gitlab::parse(&event, &body)),
        kind => payload_github::event_name(kind, &headers)
            .and_then(|event| payload_github::parse(kind, &event, &body)),
    };
    let event = match parsed {
        Ok(Parsed::Build(event)) => event,
        Ok(Parsed::Ignore(why)) => {
            tracing::info!(forge = %name, delivery = %delivery, reason = %why, "webhook ignored");
            return answer(StatusCode::OK, json!({ "ignored": why }));
        }
        Err(e) => {
            tracing::warn!(forge = %name, delivery = %delivery, error = %e, "webhook refused");
            return refuse(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let repositories = &forge.config.repositories;
    if !repositories.is_empty() && !repositories.contains(&event.repository) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "repository {} is not in forges.repositories of forge `{name}`",
                event.repository
            ),
        );
    }
    // The signed body is the delivery: a redelivery or a replay of it queues nothing new.
    let key = format!("forge:{name}:{}", Sha256Digest::of(&body).hex());
    queue(&receiver, &forge, event, &delivery, &key).await
}

async fn queue(
    receiver: &Receiver,
    forge: &Arc<Forge>,
    event: ForgeEvent,
    delivery: &str,
    key: &str,
) -> Response {
    let name = &forge.config.name;
    match receiver
        .scheduler
        .store()
        .job_with_idempotency_key(key)
        .await
    {
        Ok(Some(job)) => {
            return answer(
                StatusCode::OK,
                json!({ "duplicate": true, "job_id": job.to_string() }),
            );
        }
        Ok(None) => {}
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
    let fetch = {
        let forge = Arc::clone(forge);
        let repository = event.head_repository.clone();
        let commit = event.commit;
        tokio::task::spawn_blocking(move || {
            forge
                .api
                .job_file(&repository, &forge.config.job_file, &commit)
        })
    };
    let bytes = match fetch.await {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => {
            let why = format!(
                "{} has no {} at {}: nothing to build",
                event.head_repository,
                forge.config.job_file,
                event.commit.hex()
            );
            return answer(StatusCode::OK, json!({ "ignored": why }));
        }
        Ok(Err(e)) => {
            tracing::warn!(forge = %name, delivery, error = %e, "cannot read the job file");
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!("cannot read the job file from the forge: {e}"),
            );
        }
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (spec, decision) = match spec_for(&forge.config, &event, delivery, &bytes) {
        Ok(prepared) => prepared,
        Err(refused) => {
            report_refusal(forge, &event, &refused);
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, refused.to_string());
        }
    };
    let profile = spec.job.profile.clone();
    let client = crate::policy::ClientInput::forge(name);
    match receiver
        .scheduler
        .submit(spec.to_json(), key, 0, &client, None)
        .await
    {
        Ok((job, existing)) => {
            tracing::info!(
                forge = %name, delivery, job_id = %job, profile = %profile,
                repository = %event.repository, commit = %event.commit.hex(),
                note = decision.note.as_deref().unwrap_or(""),
                "webhook queued a job"
            );
            answer(
                if existing {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                },
                json!({
                    "job_id": job.to_string(),
                    "profile": profile,
                    "existing": existing,
                    "url": receiver.forges.job_url(&job.to_string()),
                }),
            )
        }
        // Two deliveries of one body raced: the other one queued it.
        Err(ApiError::AlreadyExists(message)) => answer(
            StatusCode::OK,
            json!({ "duplicate": true, "message": message }),
        ),
        Err(e @ (ApiError::InvalidArgument { .. } | ApiError::FailedPrecondition(_))) => {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        // The admission policy said no: tell the pull request why.
        Err(ApiError::PermissionDenied(message)) => {
            let refused = JobFileRefused::Invalid {
                commit: event.commit.hex(),
                message: message.clone(),
            };
            report_refusal(forge, &event, &refused);
            refuse(StatusCode::FORBIDDEN, message)
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Tells the pull request why nothing runs (an `error` status without a job page).
fn report_refusal(forge: &Arc<Forge>, event: &ForgeEvent, refused: &JobFileRefused) {
    let status = CommitStatus {
        state: StatusState::Error,
        cancelled: false,
        context: "airlock".to_owned(),
        description: refused.to_string(),
        target_url: None,
    };
    let forge = Arc::clone(forge);
    let repository = event.repository.clone();
    let commit = event.commit;
    tokio::spawn(async move { post_with_retries(&forge, &repository, &commit, &status).await });
}

/// The forge's delivery id, checked to be printable and short.
fn delivery_id(kind: ForgeKind, headers: &HeaderMap) -> Result<String, String> {
    let names: &[&str] = match kind {
        ForgeKind::Github => &["X-GitHub-Delivery"],
        ForgeKind::Forgejo => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
        ForgeKind::Gitlab => &["X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"],
    };
    let Some(value) = names.iter().find_map(|n| headers.get(*n)) else {
        return Err(format!("missing {} header", names[0]));
    };
    match value.to_str() {
        Ok(v)
            if !v.is_empty()
                && v.len() <= MAX_DELIVERY_ID
                && v.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(v.to_owned())
        }
        _ => Err(format!(
            "the {} header must be 1-{MAX_DELIVERY_ID} printable characters",
            names[0]
        )),
    }
}
