//! What the event store needs to know about an aggregate beyond cqrs-es's `Aggregate`.

use crate::catalogue::EventCodec;
use crate::envelope::StreamCategory;
use crate::ids::WorkspaceId;

pub trait EventSourced: cqrs_es::Aggregate<Event: EventCodec> {
    /// The category its streams are filed under (and published on).
    const CATEGORY: StreamCategory;
    /// Bump when the aggregate's state layout changes: older snapshots are then ignored
    /// and the state is rebuilt from events.
    const SNAPSHOT_VERSION: i32;

    /// The tenant the aggregate belongs to, once it exists.
    fn workspace_id(&self) -> Option<WorkspaceId>;
}
