//! The projectors, what they own, and how they fold a run of events.

use collab_commands::event_store::read_all;
use collab_domain::{DomainEvent, RecordedEvent, UnknownEvent};
use sqlx::PgConnection;

use crate::{documents, workspaces};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] collab_commands::StoreError),
    #[error(transparent)]
    UnknownEvent(#[from] UnknownEvent),
}

/// Every read model, by the projector that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projector {
    /// `rm_workspaces`, `rm_workspace_members`: a user's workspaces and their members.
    Workspaces,
    /// `rm_documents`, `rm_document_shares`: documents of a workspace, their metadata and
    /// explicit shares.
    Documents,
}

impl Projector {
    pub const ALL: [Projector; 2] = [Projector::Workspaces, Projector::Documents];

    pub fn name(self) -> &'static str {
        match self {
            Projector::Workspaces => "workspaces",
            Projector::Documents => "documents",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The tables this projector owns (and a rebuild empties).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Projector::Workspaces => &["rm_workspace_members", "rm_workspaces"],
            Projector::Documents => &["rm_document_shares", "rm_documents"],
        }
    }

    async fn apply(
        self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let decoded = DomainEvent::decode(
            event.stream_id.category,
            &event.event_type,
            event.schema_version,
            &event.payload,
        )?;
        match (self, &decoded) {
            (Projector::Workspaces, DomainEvent::Workspace(e)) => {
                workspaces::apply(conn, event, e).await?
            }
            (Projector::Documents, DomainEvent::Document(e)) => {
                documents::apply(conn, event, e).await?
            }
            // Content updates change no read model here; presence and search read them
            // elsewhere.
            (_, DomainEvent::Content(_))
            | (Projector::Workspaces, DomainEvent::Document(_))
            | (Projector::Documents, DomainEvent::Workspace(_)) => {}
        }
        Ok(())
    }

    /// Applies `events` past `checkpoint`, in order, advancing it. Events at or below the
    /// checkpoint (redeliveries) are skipped; a gap before an event is filled from the
    /// Postgres log first, so nothing is ever skipped.
    pub async fn fold<'a>(
        self,
        conn: &mut PgConnection,
        checkpoint: &mut i64,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<(), ProjectionError> {
        for event in events {
            if event.position <= *checkpoint {
                continue;
            }
            while event.position > *checkpoint + 1 {
                let missing = (event.position - 1 - *checkpoint).min(1000);
                let filler = read_all(&mut *conn, *checkpoint, missing).await?;
                if filler.is_empty() {
                    break;
                }
                for gap_event in &filler {
                    self.apply(conn, gap_event).await?;
                    *checkpoint = gap_event.position;
                }
                metrics::counter!("collab_projector_gap_filled_total", "projector" => self.name())
                    .increment(filler.len() as u64);
            }
            self.apply(conn, event).await?;
            *checkpoint = event.position;
        }
        Ok(())
    }
}
