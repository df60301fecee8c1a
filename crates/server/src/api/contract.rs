//! What the OpenAPI document says beside each handler's own annotations:
//! the statuses every operation can answer whatever it does (a missing
//! token, a malformed body, a cluster that cannot be asked), and the links
//! from a created record to the operations on it, so generated clients and
//! stateful testers know the whole contract.

use utoipa::Modify;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, OpenApi, Ref, ResponseBuilder};

pub struct Contract;

/// Operations that take a record's name and can follow a create.
const ON_A_RECORD: [&str; 6] = [
    "get",
    "replace",
    "patch",
    "delete",
    "verify_saved",
    "repositories",
];

impl Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        close_request_bodies(openapi);
        for item in openapi.paths.paths.values_mut() {
            for (method, operation) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ] {
                if let Some(operation) = operation {
                    constrain_path_parameters(operation);
                    add_common_statuses(method, operation);
                    if operation.operation_id.as_deref() == Some("create") {
                        link_to_the_record(operation);
                    }
                }
            }
        }
    }
}

/// Request bodies are read strictly (`crate::json`: a field the body does
/// not have is refused with 422 naming it), so their schemas say
/// `additionalProperties: false`. Said here, once for every body, because
/// the types no longer carry serde's `deny_unknown_fields` (the field is
/// named from what the deserializer ignored, which that attribute would
/// turn into an error first). A free-form body (`Object`: the Deployment,
/// whose fields Kubernetes' own schema gives) has no properties and is
/// left open.
fn close_request_bodies(openapi: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let mut named = std::collections::BTreeSet::new();
    for item in openapi.paths.paths.values() {
        for operation in [&item.put, &item.post, &item.patch].into_iter().flatten() {
            let Some(RefOr::T(body)) = &operation.request_body else {
                continue;
            };
            let contents = body.content.values();
            let schemas = contents.filter_map(|content| match content {
                RefOr::T(content) => content.schema.as_ref(),
                RefOr::Ref(_) => None,
            });
            for schema in schemas {
                if let RefOr::Ref(reference) = schema
                    && let Some(name) = reference.ref_location.rsplit('/').next()
                {
                    named.insert(name.to_owned());
                }
            }
        }
    }
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for name in named {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name)
            && !object.properties.is_empty()
        {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// A repository path: components as the reference grammar allows them.
const REPOSITORY_PATTERN: &str =
    "^[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$";

/// Record names and namespaces in paths are DNS-1123 labels, repositories
/// follow the reference grammar: what the handlers check, said up front.
fn constrain_path_parameters(operation: &mut Operation) {
    use utoipa::PartialSchema;
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::Type;
    for parameter in operation.parameters.iter_mut().flatten() {
        let utoipa::openapi::RefOr::T(parameter) = parameter else {
            continue;
        };
        if parameter.parameter_in != ParameterIn::Path {
            continue;
        }
        match parameter.name.as_str() {
            "name" | "namespace" => {
                parameter.schema = Some(crate::registry::Dns1123Label::schema());
            }
            "repository" => {
                parameter.schema = Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(REPOSITORY_PATTERN))
                        .max_length(Some(255))
                        .into(),
                );
            }
            _ => {}
        }
    }
}

fn error(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}

fn add_common_statuses(method: &str, operation: &mut Operation) {
    let public = is_public(operation);
    let has_body = operation.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description).into());
    };
    if !public {
        add("401", "No bearer token, or one the server does not accept");
        add(
            "403",
            "Kubernetes mode: RBAC does not allow this; the message names the permission",
        );
        add(
            "503",
            "Kubernetes mode: the cluster could not be asked who the caller is",
        );
    }
    if has_body {
        add(
            "400",
            "The body is not JSON (the message gives line and column)",
        );
        add(
            "408",
            "The body did not arrive in full within the server's body read timeout",
        );
        add("413", "The body is over 1 MiB");
        add(
            "415",
            "Content-Type is not the JSON type this operation takes",
        );
        add(
            "422",
            "Invalid fields; `details` lists every one by its JSON path",
        );
    }
    // Every operation refuses query parameters it does not declare.
    add(
        "422",
        "An invalid or unknown query parameter; `field` names it",
    );
    if method == "patch" {
        add(
            "409",
            "The record changed meanwhile; read it again and retry",
        );
    }
    add(
        "500",
        "Storage failure (the message never holds a password)",
    );
}

/// An operation that needs no token (`security: [{}]`, as `/info` declares).
pub(super) fn is_public(operation: &Operation) -> bool {
    let empty = |requirement: &utoipa::openapi::security::SecurityRequirement| {
        serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
    };
    operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.iter().all(empty))
}

/// `201` of a create links to every operation on the new record by its name.
fn link_to_the_record(operation: &mut Operation) {
    let Some(utoipa::openapi::RefOr::T(created)) = operation.responses.responses.get_mut("201")
    else {
        return;
    };
    for target in ON_A_RECORD {
        created.links.insert(
            target.to_owned(),
            LinkBuilder::new()
                .operation_id(target)
                .parameter("name", "$response.body#/name")
                .description("The record just created, by its name")
                .build()
                .into(),
        );
    }
}
