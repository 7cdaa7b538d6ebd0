//! `google.protobuf.Struct` to and from JSON values: the WebAuthn options and credentials
//! travel as Structs (JSON objects to grpcurl and `buf curl`), while the service and the
//! gateway read and write them as JSON.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number};

/// A JSON object as a Struct; `None` for anything else.
pub fn to_struct(json: serde_json::Value) -> Option<Struct> {
    match json {
        serde_json::Value::Object(map) => Some(object(map)),
        _ => None,
    }
}

/// A Struct as a JSON object. Numbers are doubles in a Struct; the whole ones come back as
/// integers, so that a field typed as an integer reads them.
pub fn from_struct(s: Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, from_value(v)))
            .collect(),
    )
}

fn object(map: Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(object(map)),
    };
    Value { kind: Some(kind) }
}

fn from_value(value: Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.into_iter().map(from_value).collect())
        }
        Some(Kind::StructValue(s)) => from_struct(s),
    }
}

/// Whole numbers within f64's exact range as integers, the rest as they are.
fn number(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        serde_json::Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip_with_whole_numbers_as_integers() {
        let value = json!({
            "publicKey": {
                "challenge": "q83v",
                "timeout": 300000,
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "ratio": 0.5,
                "userHandle": null,
                "rk": true
            }
        });
        let back = from_struct(to_struct(value.clone()).unwrap());
        assert_eq!(back, value);
        assert!(back["publicKey"]["timeout"].is_u64());
        assert!(back["publicKey"]["pubKeyCredParams"][0]["alg"].is_i64());
    }

    #[test]
    fn only_objects_become_structs() {
        assert!(to_struct(json!([1, 2])).is_none());
        assert!(to_struct(json!("text")).is_none());
    }
}
