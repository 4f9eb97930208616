//! Access changes reach live sockets because the events that reduce access were
//! committed: every instance follows the workspace and document events on JetStream, and
//! for each one that may have taken access away (`collab_domain::access::access_reduced_by`)
//! it re-checks the sessions of the affected rooms against the aggregates and closes those
//! that lost access, or write access. Whatever path appends such an event — a route, a
//! CLI, a future integration — is covered without a line of its own.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use collab_commands::AggregateStore;
use collab_domain::access::{access_reduced_by, AccessReduced};
use collab_domain::{DomainEvent, StreamCategory, WireEnvelope};
use collab_store::relay::ensure_events_stream;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::protocol::close;
use super::room::Room;
use super::rooms::Rooms;
use collab_commands::access;

/// Re-checks every session of the matching rooms of this instance.
pub async fn revalidate(rooms: &Rooms, aggregates: &AggregateStore, change: AccessReduced) {
    let affected: Vec<Arc<Room>> = rooms
        .loaded_rooms()
        .into_iter()
        .filter(|room| match change {
            AccessReduced::Document(document) => document == room.document_id,
            AccessReduced::Workspace(workspace) => workspace == room.workspace_id,
        })
        .collect();
    for room in affected {
        for session in room.sessions() {
            // A service account's scopes are re-read (and a revoked one has none).
            let service = match &session.service {
                Some(service) => match aggregates
                    .load::<collab_domain::workspace::Workspace>(service.workspace.as_uuid())
                    .await
                {
                    Ok(loaded) => match loaded.aggregate.service_account(service.account) {
                        Some(account) => Some((
                            access::ServiceIdentity {
                                scopes: account.scopes.clone(),
                                ..service.clone()
                            },
                            Arc::new(loaded.aggregate.clone()),
                        )),
                        None => {
                            room.close_session(
                                session.id,
                                close::FORBIDDEN,
                                "this API key was revoked",
                            );
                            continue;
                        }
                    },
                    Err(error) => {
                        warn!(%error, "cannot re-check a service account");
                        continue;
                    }
                },
                None => None,
            };
            let (service, loaded_workspace) = service.unzip();
            let caller = access::Caller {
                user: session.user.clone(),
                link: session.link,
                service,
                loaded_workspace,
            };
            let resolved = access::resolve(aggregates, room.document_id, &caller).await;
            let verdict = match resolved {
                Ok(None) => Some("access to this document was revoked"),
                Ok(Some(access)) if !session.read_only && !access.role.edits() => {
                    Some("your access changed to read-only; reconnect")
                }
                Ok(Some(_)) => None,
                Err(error) => {
                    warn!(%error, "cannot re-check access");
                    None
                }
            };
            if let Some(reason) = verdict {
                info!(document.id = %room.document_id, user.id = %session.user, reason, "closing socket after an access change");
                room.close_session(session.id, close::FORBIDDEN, reason);
            }
        }
    }
}

/// Follows the access-reducing events of the log until `stop`, re-checking local
/// sessions for each. Starts at the stream's end: a socket admitted before is checked
/// against everything committed after its admission.
pub async fn follow(
    js: jetstream::Context,
    prefix: String,
    rooms: Rooms,
    aggregates: AggregateStore,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow_once(&js, &prefix, &rooms, &aggregates, &stop).await {
            Ok(()) => return,
            Err(error) => {
                warn!(%error, "cannot follow access changes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn follow_once(
    js: &jetstream::Context,
    prefix: &str,
    rooms: &Rooms,
    aggregates: &AggregateStore,
    stop: &CancellationToken,
) -> Result<(), String> {
    let stream = ensure_events_stream(js, prefix).await?;
    // One ordered consumer per category (one filter subject each on nats-server 2.9);
    // content edits, the bulk of the log, never reach this instance through here.
    let mut merged = futures::stream::SelectAll::new();
    for category in [StreamCategory::Workspace, StreamCategory::Document] {
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{prefix}.events.*.{}.*", category.as_str()),
                deliver_policy: DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        merged.push(consumer.messages().await.map_err(|e| e.to_string())?);
    }
    loop {
        let message = tokio::select! {
            message = merged.next() => message,
            _ = stop.cancelled() => return Ok(()),
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("access event stream ended".into()),
        };
        let Ok(event) = WireEnvelope::decode(&message.payload) else {
            continue;
        };
        let reduced = DomainEvent::decode(
            event.stream_id.category,
            &event.event_type,
            event.schema_version,
            &event.payload,
        )
        .ok()
        .and_then(|decoded| access_reduced_by(&event, &decoded));
        if let Some(change) = reduced {
            revalidate(rooms, aggregates, change).await;
        }
    }
}
