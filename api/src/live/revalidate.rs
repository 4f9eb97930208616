//! Access changes reach live sockets: after a permission-affecting command commits, every
//! instance re-checks the sessions of the affected rooms and closes those that lost access
//! (or write access) — within a NATS round trip, far below the one-second promise.

use std::sync::Arc;

use collab_commands::AggregateStore;
use collab_domain::{DocumentId, WorkspaceId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::protocol::close;
use super::room::Room;
use super::rooms::Rooms;
use crate::access;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AccessChanged {
    pub instance: Uuid,
    pub workspace: Option<WorkspaceId>,
    pub document: Option<DocumentId>,
}

pub fn subject(prefix: &str) -> String {
    format!("{prefix}.access")
}

/// Re-checks every session of the matching rooms of this instance.
pub async fn revalidate(rooms: &Rooms, aggregates: &AggregateStore, change: AccessChanged) {
    let affected: Vec<Arc<Room>> = rooms
        .loaded_rooms()
        .into_iter()
        .filter(|room| {
            change.document.is_none_or(|d| d == room.document_id)
                && change.workspace.is_none_or(|w| w == room.workspace_id)
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
                        Some(account) => Some(access::ServiceIdentity {
                            scopes: account.scopes.clone(),
                            ..service.clone()
                        }),
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
            let resolved = access::resolve(
                aggregates,
                room.document_id,
                &session.user,
                session.link.as_ref(),
                service.as_ref(),
            )
            .await;
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

/// Applies access changes announced by other instances.
pub async fn listen(
    client: async_nats::Client,
    prefix: String,
    instance: Uuid,
    rooms: Rooms,
    aggregates: AggregateStore,
    stop: CancellationToken,
) {
    let Ok(mut subscription) = client.subscribe(subject(&prefix)).await else {
        warn!("cannot subscribe to access changes; only this instance's changes close sockets");
        return;
    };
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            _ = stop.cancelled() => return,
        };
        let Some(message) = message else { return };
        if let Ok(change) = postcard::from_bytes::<AccessChanged>(&message.payload) {
            if change.instance != instance {
                revalidate(&rooms, &aggregates, change).await;
            }
        }
    }
}
