//! `/metrics`, `/healthz` (the loop turns) and `/readyz` (the last pass reached the API
//! server), for the node agent and the maintenance workload alike: each serves what its
//! [`Probes`] say. `/metrics` is OpenMetrics for a client that asks for it (Prometheus does),
//! and the classic Prometheus text format otherwise (curl, `promtool check metrics`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What the endpoints report.
pub trait Probes: Send + Sync + 'static {
    /// The metrics in the OpenMetrics text format.
    fn metrics_text(&self) -> Result<String, std::fmt::Error>;
    /// True while the loop keeps turning.
    fn is_alive(&self) -> bool;
    /// True once a pass has reached the API server, and recently.
    fn is_ready(&self) -> bool;
}

/// The router.
pub fn router<P: Probes>(state: Arc<P>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<P>))
        .route("/healthz", get(healthz::<P>))
        .route("/readyz", get(readyz::<P>))
        .with_state(state)
}

async fn metrics<P: Probes>(State(p): State<Arc<P>>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match p.metrics_text() {
        Ok(text) if openmetrics => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::exposition::classic_text(&text),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {e}"),
        ),
    }
}

async fn healthz<P: Probes>(State(p): State<Arc<P>>) -> impl IntoResponse {
    if p.is_alive() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the loop is stuck")
    }
}

async fn readyz<P: Probes>(State(p): State<Arc<P>>) -> impl IntoResponse {
    if p.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the Kubernetes API is not reached",
        )
    }
}
