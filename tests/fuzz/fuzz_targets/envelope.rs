//! Bytes as JetStream delivers them: the wire envelope, then the event it carries through
//! the catalogue; and any payload under every catalogued event type. Nothing may panic,
//! and whatever decodes encodes back to the same event.
#![no_main]

use collab_domain::catalogue::EventCodec;
use collab_domain::{DomainEvent, StreamCategory, WireEnvelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(recorded) = WireEnvelope::decode(bytes) {
        let _ = DomainEvent::decode_recorded(&recorded);
    }
    let Some((&pick, payload)) = bytes.split_first() else {
        return;
    };
    let catalogue = DomainEvent::catalogue();
    let entry = &catalogue[pick as usize % catalogue.len()];
    let Ok(category) = StreamCategory::parse(entry.category) else {
        return;
    };
    if let Ok(event) =
        DomainEvent::decode(category, entry.event_type, entry.schema_version, payload)
    {
        let again = match &event {
            DomainEvent::Workspace(e) => e.encode(),
            DomainEvent::Document(e) => e.encode(),
            DomainEvent::Content(e) => e.encode(),
            DomainEvent::Audit(e) => e.encode(),
            DomainEvent::Profile(e) => e.encode(),
            DomainEvent::Thread(e) => e.encode(),
            DomainEvent::File(e) => e.encode(),
        };
        let round = DomainEvent::decode(category, entry.event_type, entry.schema_version, &again)
            .expect("an encoded event decodes");
        assert_eq!(round, event);
        let _ = event.to_json();
    }
});
