//! What a body proves, read the same way by every route that takes a proof: the one field
//! set among a request's `oneof` alternatives, and a passkey's credential as the Struct the
//! service takes (bounded in depth, so the service's decoder never refuses it).

use baatcheet_auth_api::json;

use crate::error::ApiError;

/// A body's field and the proof it makes when given.
pub type Given<P> = (Option<String>, fn(String) -> P);

/// The one proof a body gives, as a request's `oneof`: `None` when it gives none (the service
/// then names what is missing), 422 naming `proof` when it gives several.
pub fn one_proof<P, const N: usize>(given: [Given<P>; N]) -> Result<Option<P>, ApiError> {
    let mut given = given
        .into_iter()
        .filter_map(|(value, make)| Some(make(value?)));
    let first = given.next();
    if given.next().is_some() {
        return Err(ApiError::one_of(
            "proof",
            "give only one of the proof fields",
        ));
    }
    Ok(first)
}

/// Deepest nesting of a credential passed on: a PublicKeyCredential is 3 levels deep, and
/// the service's decoder stops at 100.
const MAX_DEPTH: usize = 16;

/// A JSON credential as the service takes it: a Struct (an object), or the field is missing.
pub fn credential(
    value: Option<serde_json::Value>,
) -> Result<Option<prost_types::Struct>, ApiError> {
    let refuse = |why: &str| ApiError::one_of("credential", why);
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) if depth(&v) > MAX_DEPTH => Err(refuse("credential is nested too deeply")),
        Some(v) => json::to_struct(v)
            .map(Some)
            .ok_or_else(|| refuse("credential must be a PublicKeyCredential object")),
    }
}

fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
