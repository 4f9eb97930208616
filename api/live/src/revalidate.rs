//! Access changes reach live sockets because the events that reduce access were
//! committed: every instance follows the workspace and document events of the Postgres
//! log (the source of truth, so neither the relay nor NATS has to be up), and for each one
//! that may have taken access away (`collab_domain::access::access_reduced_by`) it
//! re-checks the sessions of the affected rooms against the aggregates and closes those
//! that lost access, or write access. Whatever path appends such an event — a route, a
//! CLI, a future integration — is covered without a line of its own.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use collab_commands::AggregateStore;
use collab_domain::access::{access_reduced_by, AccessReduced};
use collab_domain::{DomainEvent, StreamCategory};
use collab_store::EventLog;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::protocol::close;
use super::room::Room;
use super::rooms::Rooms;
use collab_commands::access;

/// How often the log is read for new access events: the bound on how long a socket that
/// lost access stays open.
const POLL: Duration = Duration::from_millis(250);

/// Events read per query.
const PAGE: i64 = 500;

/// How far [`follow`] has come: the log position it has handled up to, and the position of
/// the newest access-reducing event it has begun to apply (stored before the rooms are
/// re-checked, so a socket joining meanwhile is either seen by the re-check or sees it).
#[derive(Debug, Default)]
pub struct Progress {
    handled: AtomicI64,
    last_reduction: AtomicI64,
}

impl Progress {
    /// The position up to which access changes were applied to live sockets.
    pub fn handled(&self) -> i64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Whether an access-reducing event after `position` has been (or is being) applied.
    pub fn reduced_after(&self, position: i64) -> bool {
        self.last_reduction.load(Ordering::Acquire) > position
    }
}

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
                    Ok(loaded) => match loaded
                        .aggregate
                        .service_account(service.account)
                        .map(|account| account.scopes.clone())
                    {
                        Some(scopes) => Some((
                            access::ServiceIdentity {
                                scopes,
                                ..service.clone()
                            },
                            Arc::new(loaded.aggregate),
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

/// Follows the access-reducing events of the log until `stop`, re-checking local sessions
/// for each. Starts at the log's head (sockets admitted from now on were checked against
/// everything before) and resumes where it stopped after any error. `progress` says how
/// far it has come: a socket admitted before an access-reducing event it applied is
/// re-checked (see `session::run`).
pub async fn follow(
    pool: PgPool,
    rooms: Rooms,
    aggregates: AggregateStore,
    progress: Arc<Progress>,
    stop: CancellationToken,
) {
    let categories = [StreamCategory::Workspace, StreamCategory::Document];
    let mut position = loop {
        match EventLog::head(&pool).await {
            Ok(head) => break head,
            Err(error) => warn!(%error, "cannot read the log head; access changes wait"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    };
    progress.handled.store(position, Ordering::Release);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        loop {
            let events =
                match EventLog::read_categories(&pool, &categories, position, i64::MAX, PAGE).await
                {
                    Ok(events) => events,
                    Err(error) => {
                        warn!(%error, "cannot read access changes; retrying");
                        break;
                    }
                };
            for event in &events {
                let reduced = DomainEvent::decode(
                    event.stream_id.category,
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                )
                .ok()
                .and_then(|decoded| access_reduced_by(event, &decoded));
                if let Some(change) = reduced {
                    progress
                        .last_reduction
                        .store(event.position, Ordering::Release);
                    revalidate(&rooms, &aggregates, change).await;
                }
                position = event.position;
                progress.handled.store(position, Ordering::Release);
            }
            if (events.len() as i64) < PAGE {
                break;
            }
        }
    }
}
