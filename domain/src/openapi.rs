//! OpenAPI schemas (utoipa) of the values the HTTP API sends and takes: the same shapes as
//! their JSON Schemas in the catalogue (ids as UUID strings, roles and scopes as their
//! lowercase names, user ids as strings).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::role::{DocumentRole, Scope, WorkspaceRole};

fn uuid() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .into()
}

macro_rules! openapi_schema {
    ($name:ty, $description:literal, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let schema: RefOr<Schema> = $schema;
                match schema {
                    RefOr::T(Schema::Object(mut object)) => {
                        object.description = Some($description.into());
                        RefOr::T(Schema::Object(object))
                    }
                    other => other,
                }
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

openapi_schema!(DocumentId, "A document's id.", uuid());
openapi_schema!(WorkspaceId, "A workspace's id.", uuid());
openapi_schema!(
    UserId,
    "A user as the identity provider names them (the token's `sub`), or `service:<account>` for a service account.",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(UserId::MAX_LEN))
        .into()
);

fn names(all: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(all))
        .into()
}

openapi_schema!(
    WorkspaceRole,
    "A role in a workspace.",
    names(WorkspaceRole::ALL.iter().map(|r| r.as_str()))
);
openapi_schema!(
    DocumentRole,
    "A role on a document.",
    names(DocumentRole::ALL.iter().map(|r| r.as_str()))
);
openapi_schema!(
    Scope,
    "What a service account's key may do.",
    names(Scope::ALL.iter().map(|r| r.as_str()))
);
