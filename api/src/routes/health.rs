//! Liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Health of the server process itself.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object))
)]
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when Postgres answers and the NATS connection is up.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready: `{status, checks: {postgres, nats}}`", body = Object),
        (status = 503, description = "Not ready; `checks` says which dependency failed", body = Object)
    )
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let postgres = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await;
    let postgres = match postgres {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".to_owned(),
    };
    let nats = match state.nats.connection_state() {
        async_nats::connection::State::Connected => "ok".to_owned(),
        other => format!("error: {other:?}"),
    };
    let ready = postgres == "ok" && nats == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "checks": { "postgres": postgres, "nats": nats },
        })),
    )
}

/// Prometheus text format. Log-level gauges (head, relay and read-model lag) are read
/// from Postgres at scrape time, so any role's process reports them.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let head = collab_store::EventLog::head(&state.pool).await;
    if let Ok(head) = head {
        metrics::gauge!("collab_event_log_head_position").set(head as f64);
        let relayed: Option<i64> =
            sqlx::query_scalar("SELECT max(position) FROM relay_checkpoints")
                .fetch_one(&state.pool)
                .await
                .ok()
                .flatten();
        metrics::gauge!("collab_relay_lag_events").set((head - relayed.unwrap_or(0)) as f64);
        // Lag counts only events of a consumer's own categories: a caught-up read
        // model of documents is not behind because someone typed.
        if let Ok(status) = collab_projections::status(&state.pool, &state.registry).await {
            for consumer in status {
                metrics::gauge!("collab_projector_lag_events", "projector" => consumer.name)
                    .set(consumer.lag as f64);
                if let Some((parked, _)) = consumer.parked {
                    metrics::gauge!("collab_worker_parked_events", "worker" => consumer.name)
                        .set(parked as f64);
                }
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
