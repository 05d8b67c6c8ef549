//! The key in the OpenAPI document: on every command operation.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{HeaderBuilder, OpenApi, RefOr, Required};

use crate::openapi::error_response;

/// Documents the key on every POST operation of `doc` (every command): the optional
/// `Idempotency-Key` header, the 422 and 409 it may give, and the `Idempotent-Replayed`
/// header of a replayed success.
pub(crate) fn document(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let Some(operation) = item.post.as_mut() else {
            continue;
        };
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let named = |p: &RefOr<Parameter>| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key");
        if !parameters.iter().any(named) {
            parameters.push(RefOr::T(key_parameter()));
        }
        let responses = &mut operation.responses.responses;
        for (status, response) in responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                response.headers.insert(
                    "Idempotent-Replayed".to_owned(),
                    RefOr::T(replayed_header()),
                );
            }
        }
        responses.entry("422".to_owned()).or_insert_with(|| {
            error_response(
                "IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was first used with another request",
            )
            .into()
        });
        match responses.get_mut("409") {
            Some(RefOr::T(conflict)) => {
                if !conflict.description.contains("IDEMPOTENCY_KEY_IN_USE") {
                    conflict.description.push_str(
                        "; or IDEMPOTENCY_KEY_IN_USE: the first request with this key is still running",
                    );
                }
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                responses.insert(
                    "409".to_owned(),
                    error_response(
                        "IDEMPOTENCY_KEY_IN_USE: the first request with this key is still running",
                    )
                    .into(),
                );
            }
        }
    }
}

fn key_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes the command safe to repeat: the first request with a key runs and its \
             response is remembered (24 h by default); a repeat with the same key and the same \
             request (method, path, body bytes) gets that response again, with \
             Idempotent-Replayed: true, and stores nothing. 1 to 255 printable ASCII characters.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(factum_core::MAX_IDEMPOTENCY_KEY_LEN))
                .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
        ))
        .build()
}

fn replayed_header() -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        )
        )
        .description(Some(
            "true when this is the remembered response to an earlier request with the same Idempotency-Key",
        ))
        .build()
}
