//! Plain HTTP endpoints served next to gRPC on the controller's listen address:
//! `GET /metrics` (Prometheus text format 0.0.4) and `GET /healthz` (`ok` once the store
//! answers). Neither needs a token and neither reveals job contents.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

use crate::scheduler::Scheduler;

/// The HTTP routes.
pub fn routes(scheduler: Arc<Scheduler>) -> Router {
    let for_metrics = Arc::clone(&scheduler);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let scheduler = Arc::clone(&for_metrics);
                async move {
                    match scheduler.render_metrics().await {
                        Ok(text) => (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            text,
                        ),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(header::CONTENT_TYPE, "text/plain")],
                            format!("metrics unavailable: {e}\n"),
                        ),
                    }
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let scheduler = Arc::clone(&scheduler);
                async move {
                    match scheduler.store().queue_depth().await {
                        Ok(_) => (StatusCode::OK, "ok\n".to_owned()),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {e}\n")),
                    }
                }
            }),
        )
}
