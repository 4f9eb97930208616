//! The projectors, what they own, and how they fold a run of events.

use collab_commands::event_store::read_category;
use collab_domain::{DomainEvent, RecordedEvent, StreamCategory, UnknownEvent};
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

    /// The one stream category this projector reads: its consumer is filtered to it, its
    /// gaps and rebuilds read only it (documents' content edits never reach it).
    pub fn category(self) -> StreamCategory {
        match self {
            Projector::Workspaces => StreamCategory::Workspace,
            Projector::Documents => StreamCategory::Document,
        }
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

    /// Folds every event of this projector's category after `checkpoint` up to and
    /// including position `target`, reading them from the Postgres log (the source of
    /// truth), and advances the checkpoint to `target`. A delivered message is only the
    /// signal and the high-water mark: redeliveries (at or below the checkpoint) change
    /// nothing, and an event JetStream lost or reordered is read anyway.
    pub async fn fold_to(
        self,
        conn: &mut PgConnection,
        checkpoint: &mut i64,
        target: i64,
    ) -> Result<usize, ProjectionError> {
        if target <= *checkpoint {
            return Ok(0);
        }
        let mut folded = 0;
        loop {
            let events =
                read_category(&mut *conn, self.category(), *checkpoint, target + 1, 1000).await?;
            let Some(last) = events.last().map(|e| e.position) else {
                break;
            };
            for event in &events {
                self.apply(conn, event).await?;
            }
            folded += events.len();
            *checkpoint = last;
            if events.len() < 1000 {
                break;
            }
        }
        *checkpoint = target;
        Ok(folded)
    }
}
