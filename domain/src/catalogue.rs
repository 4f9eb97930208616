//! The event catalogue: every event type, its schema version, and how it is encoded.
//!
//! Each event is its own struct, encoded with postcard on its own, and named in the
//! envelope by type name + schema version — never by its position in a Rust enum, so
//! adding or reordering variants cannot change what stored bytes mean. A published event
//! type is never changed: a new shape is a new schema version with an upcaster arm in
//! `decode` that turns the old bytes into the current variant.

use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::comment::ThreadEvent;
use crate::content::ContentEvent;
use crate::document::DocumentEvent;
use crate::envelope::StreamCategory;
use crate::file::FileEvent;
use crate::profile::ProfileEvent;
use crate::workspace::WorkspaceEvent;

/// The stored bytes do not name an event this build knows, or do not decode as it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode event {event_type} v{schema_version}: {reason}")]
pub struct UnknownEvent {
    pub event_type: String,
    pub schema_version: i32,
    pub reason: String,
}

/// How an aggregate's event enum turns into catalogue entries and back.
pub trait EventCodec: Sized {
    fn event_type(&self) -> &'static str;
    fn schema_version(&self) -> i32;
    fn encode(&self) -> Vec<u8>;
    fn decode(event_type: &str, schema_version: i32, payload: &[u8]) -> Result<Self, UnknownEvent>;
    /// The payload as JSON (bytes as base64): what consumers see in `data`.
    fn to_json(&self) -> serde_json::Value;
    /// One entry per event type of this enum, generated from the payload structs.
    fn catalogue() -> Vec<CatalogueEntry>;

    /// Decodes the payload of a stored event.
    fn decode_recorded(event: &crate::RecordedEvent) -> Result<Self, UnknownEvent> {
        Self::decode(&event.event_type, event.schema_version, &event.payload)
    }
}

/// Declares an aggregate's event enum whose variants wrap same-named payload structs,
/// with its catalogue codec (postcard encoding, JSON view, catalogue entries generated
/// from the structs and their doc comments) and the cqrs-es `DomainEvent` impl.
macro_rules! event_enum {
    ($(#[$meta:meta])* $enum:ident in $category:ident {
        $($name:ident = $version:literal $(($($old:literal => $old_type:ty),+))?),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum $enum {
            $($name($name)),+
        }

        impl $crate::catalogue::EventCodec for $enum {
            fn event_type(&self) -> &'static str {
                match self { $(Self::$name(_) => stringify!($name)),+ }
            }

            fn schema_version(&self) -> i32 {
                match self { $(Self::$name(_) => $version),+ }
            }

            fn encode(&self) -> Vec<u8> {
                match self {
                    $(Self::$name(event) => postcard::to_allocvec(event)
                        .expect("event payloads are plain data and always encode")),+
                }
            }

            fn decode(
                event_type: &str,
                schema_version: i32,
                payload: &[u8],
            ) -> Result<Self, $crate::catalogue::UnknownEvent> {
                let fail = |reason: String| $crate::catalogue::UnknownEvent {
                    event_type: event_type.to_owned(),
                    schema_version,
                    reason,
                };
                match (event_type, schema_version) {
                    $((stringify!($name), $version) => postcard::from_bytes::<$name>(payload)
                        .map(Self::$name)
                        .map_err(|e| fail(e.to_string())),)+
                    // Upcasters: an older schema version decodes as itself, then converts.
                    $($($((stringify!($name), $old) => postcard::from_bytes::<$old_type>(payload)
                        .map(|old| Self::$name(<$name>::from(old)))
                        .map_err(|e| fail(e.to_string())),)+)?)+
                    _ => Err(fail("unknown type or schema version".to_owned())),
                }
            }

            fn to_json(&self) -> serde_json::Value {
                match self {
                    $(Self::$name(event) => serde_json::to_value(event)
                        .expect("event payloads always convert to JSON")),+
                }
            }

            fn catalogue() -> Vec<$crate::catalogue::CatalogueEntry> {
                vec![$($crate::catalogue::CatalogueEntry::new(
                    $crate::envelope::StreamCategory::$category,
                    stringify!($name),
                    $version,
                    &[$($($old),+)?],
                    schemars::schema_for!($name),
                )),+]
            }
        }

        impl cqrs_es::DomainEvent for $enum {
            fn event_type(&self) -> String {
                $crate::catalogue::EventCodec::event_type(self).to_owned()
            }

            fn event_version(&self) -> String {
                $crate::catalogue::EventCodec::schema_version(self).to_string()
            }
        }
    };
}
pub(crate) use event_enum;

/// The JSON Schema of byte fields: base64 text in JSON (raw bytes in postcard).
pub struct Base64Bytes;

impl schemars::JsonSchema for Base64Bytes {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Base64Bytes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "contentEncoding": "base64" })
    }
}

/// One event type as consumers see it: what it means and what its payload holds.
#[derive(Clone, Debug, Serialize)]
pub struct CatalogueEntry {
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub schema_version: i32,
    /// Older schema versions still stored, which every reader sees upcast to this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upcast_from: Vec<i32>,
    /// The stream category (middle token of the NATS subject).
    pub category: &'static str,
    /// From the payload struct's doc comment.
    pub description: String,
    /// In postcard order.
    pub fields: Vec<CatalogueField>,
    /// The JSON Schema of `data` in replay lines.
    pub schema: serde_json::Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct CatalogueField {
    pub name: String,
    /// A short type: `string`, `uuid`, `integer`, `base64 bytes`, `one of a, b`, `list of …`,
    /// with `optional` when it may be null.
    #[serde(rename = "type")]
    pub field_type: String,
    pub description: String,
}

impl CatalogueEntry {
    pub fn new(
        category: StreamCategory,
        event_type: &'static str,
        schema_version: i32,
        upcast_from: &[i32],
        schema: schemars::Schema,
    ) -> Self {
        let schema = schema.to_value();
        let text = |value: Option<&serde_json::Value>| {
            value
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .trim()
                .replace('\n', " ")
        };
        let fields = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, property)| CatalogueField {
                        name: name.clone(),
                        field_type: describe_type(property),
                        description: text(property.get("description")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            event_type,
            schema_version,
            upcast_from: upcast_from.to_vec(),
            category: category.as_str(),
            description: text(schema.get("description")),
            fields,
            schema,
        }
    }
}

/// A short human type for a JSON Schema property.
fn describe_type(schema: &serde_json::Value) -> String {
    use serde_json::Value;
    let mut optional = false;
    let mut kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(|k| k.as_str()).collect(),
        _ => vec![],
    };
    if kinds.contains(&"null") {
        optional = true;
        kinds.retain(|k| *k != "null");
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        let values: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
        optional |= schema["enum"]
            .as_array()
            .is_some_and(|v| v.contains(&Value::Null));
        let text = format!("one of {}", values.join(", "));
        return if optional {
            format!("optional {text}")
        } else {
            text
        };
    }
    if let Some(Value::Array(options)) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
        let real: Vec<&Value> = options
            .iter()
            .filter(|o| o.get("type").and_then(|t| t.as_str()) != Some("null"))
            .collect();
        // Unit variants of an enum are constants: list them as one choice.
        let constants: Vec<&str> = real
            .iter()
            .filter_map(|o| o.get("const").and_then(|c| c.as_str()))
            .collect();
        let mut described: Vec<String> = real
            .iter()
            .filter(|o| o.get("const").is_none())
            .map(|o| describe_type(o))
            .collect();
        if !constants.is_empty() {
            described.insert(0, format!("one of {}", constants.join(", ")));
        }
        let inner = described.join(" or ");
        return if real.len() < options.len() {
            format!("optional {inner}")
        } else {
            inner
        };
    }
    let base = match (
        kinds.first().copied(),
        schema.get("format").and_then(|f| f.as_str()),
    ) {
        (Some("string"), Some("uuid")) => "uuid".to_owned(),
        (Some("string"), Some("user-id")) => "user id".to_owned(),
        (Some("string"), _) if schema.get("contentEncoding").is_some() => "base64 bytes".to_owned(),
        (Some("string"), _) => "string".to_owned(),
        (Some("integer"), _) => "integer".to_owned(),
        (Some("boolean"), _) => "boolean".to_owned(),
        (Some("array"), _) => format!(
            "list of {}",
            schema.get("items").map(describe_type).unwrap_or_default()
        ),
        (Some("object"), _) => match schema.get("properties").and_then(|p| p.as_object()) {
            Some(properties) if !properties.is_empty() => {
                let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                format!("object ({})", names.join(", "))
            }
            _ => "object".to_owned(),
        },
        (Some(other), _) => other.to_owned(),
        (None, _) => "any".to_owned(),
    };
    if optional {
        format!("optional {base}")
    } else {
        base
    }
}

/// Any event in the catalogue, as projections and consumers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DomainEvent {
    Workspace(WorkspaceEvent),
    Document(DocumentEvent),
    Content(ContentEvent),
    Audit(AuditEvent),
    Profile(ProfileEvent),
    Thread(ThreadEvent),
    File(FileEvent),
}

impl DomainEvent {
    /// Decodes a stored event, choosing the aggregate by the stream's category.
    pub fn decode(
        category: StreamCategory,
        event_type: &str,
        schema_version: i32,
        payload: &[u8],
    ) -> Result<Self, UnknownEvent> {
        match category {
            StreamCategory::Workspace => {
                WorkspaceEvent::decode(event_type, schema_version, payload).map(Self::Workspace)
            }
            StreamCategory::Document => {
                DocumentEvent::decode(event_type, schema_version, payload).map(Self::Document)
            }
            StreamCategory::Content => {
                ContentEvent::decode(event_type, schema_version, payload).map(Self::Content)
            }
            StreamCategory::Audit => {
                AuditEvent::decode(event_type, schema_version, payload).map(Self::Audit)
            }
            StreamCategory::User => {
                ProfileEvent::decode(event_type, schema_version, payload).map(Self::Profile)
            }
            StreamCategory::Thread => {
                ThreadEvent::decode(event_type, schema_version, payload).map(Self::Thread)
            }
            StreamCategory::File => {
                FileEvent::decode(event_type, schema_version, payload).map(Self::File)
            }
        }
    }

    /// Decodes a stored event by its envelope.
    pub fn decode_recorded(event: &crate::RecordedEvent) -> Result<Self, UnknownEvent> {
        Self::decode(
            event.stream_id.category,
            &event.event_type,
            event.schema_version,
            &event.payload,
        )
    }

    /// The payload as JSON, the way replay lines carry it in `data`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Workspace(event) => event.to_json(),
            Self::Document(event) => event.to_json(),
            Self::Content(event) => event.to_json(),
            Self::Audit(event) => event.to_json(),
            Self::Profile(event) => event.to_json(),
            Self::Thread(event) => event.to_json(),
            Self::File(event) => event.to_json(),
        }
    }

    /// Every event type of every category: the catalogue, generated from the code (once).
    pub fn catalogue() -> &'static [CatalogueEntry] {
        static CATALOGUE: std::sync::OnceLock<Vec<CatalogueEntry>> = std::sync::OnceLock::new();
        CATALOGUE.get_or_init(|| {
            let mut entries = WorkspaceEvent::catalogue();
            entries.extend(DocumentEvent::catalogue());
            entries.extend(ContentEvent::catalogue());
            entries.extend(AuditEvent::catalogue());
            entries.extend(ProfileEvent::catalogue());
            entries.extend(ThreadEvent::catalogue());
            entries.extend(FileEvent::catalogue());
            entries
        })
    }

    /// Whether the catalogue has an event type of this name.
    pub fn is_known_type(name: &str) -> bool {
        Self::catalogue().iter().any(|e| e.event_type == name)
    }
}

/// The catalogue as the Markdown table ARCHITECTURE.md carries (a test keeps the two equal).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| stream | event type | v | meaning | payload fields (postcard order) |\n|---|---|---|---|---|\n",
    );
    for entry in DomainEvent::catalogue() {
        let fields = if entry.fields.is_empty() {
            "(none)".to_owned()
        } else {
            entry
                .fields
                .iter()
                .map(|f| format!("`{}` ({}): {}", f.name, f.field_type, f.description))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let version = if entry.upcast_from.is_empty() {
            entry.schema_version.to_string()
        } else {
            let old: Vec<String> = entry.upcast_from.iter().map(i32::to_string).collect();
            format!("{} (v{} upcast)", entry.schema_version, old.join(", v"))
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            entry.category, entry.event_type, version, entry.description, fields
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::DocumentEdited;

    #[test]
    fn every_event_type_and_field_is_described() {
        let entries = DomainEvent::catalogue();
        assert!(entries.len() >= 20);
        for entry in entries {
            assert!(
                !entry.description.is_empty(),
                "{} has no description",
                entry.event_type
            );
            let properties = entry.schema["properties"]
                .as_object()
                .map_or(0, |p| p.len());
            assert_eq!(entry.fields.len(), properties, "{}", entry.event_type);
            for field in &entry.fields {
                assert!(
                    !field.description.is_empty() && field.field_type != "any",
                    "{}.{} is not described: {field:?}",
                    entry.event_type,
                    field.name
                );
            }
        }
        let mut names: Vec<_> = entries
            .iter()
            .map(|e| (e.event_type, e.schema_version))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), entries.len(), "an event type is listed twice");
    }

    #[test]
    fn architecture_md_carries_the_generated_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ARCHITECTURE.md");
        let doc = std::fs::read_to_string(path).expect("ARCHITECTURE.md is readable");
        let table = markdown_table();
        assert!(
            doc.contains(&table),
            "ARCHITECTURE.md's catalogue table differs from the code; replace it with:\n{table}"
        );
    }

    #[test]
    fn bytes_are_base64_in_json_and_raw_in_postcard() {
        let event = ContentEvent::DocumentEdited(DocumentEdited {
            client_id: 42,
            update: vec![1, 2, 3],
            origin: crate::content::EditOrigin::Restore { from_version: 3 },
        });
        assert_eq!(event.encode(), vec![42, 3, 1, 2, 3, 2, 6]);
        assert_eq!(
            event.to_json(),
            serde_json::json!({ "client_id": 42, "update": "AQID", "origin": { "restore": { "from_version": 3 } } })
        );
        let entry = &ContentEvent::catalogue()[0];
        assert_eq!(entry.fields[1].field_type, "base64 bytes");
    }
}
