//! Fields that take a JSON object and nothing else.
//!
//! serde's derived `Deserialize` for a struct also reads a JSON array as the struct's fields in order, so `[]` would
//! pass as a struct whose fields are all optional: an API body with `"injection_location": []` would be accepted and
//! read as the defaults. A field whose type is such a struct names [`object_or_null`] to refuse anything but an
//! object (or null, which is absent).

use serde::de::{DeserializeOwned, Error, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Deserializes an optional struct from a JSON object, or `None` from null; refuses arrays and every other type.
/// Use with `#[serde(default, deserialize_with = "corral_api::json_object::object_or_null")]`.
pub fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(object @ Value::Object(_)) => T::deserialize(object).map(Some).map_err(D::Error::custom),
        Some(other) => Err(D::Error::invalid_type(unexpected(&other), &"an object")),
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("a number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct AllOptional {
        #[serde(default)]
        flag: Option<bool>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(default, deserialize_with = "super::object_or_null")]
        inner: Option<AllOptional>,
    }

    fn read(body: serde_json::Value) -> Result<Holder, String> {
        serde_json::from_value(body).map_err(|e| e.to_string())
    }

    #[test]
    fn an_object_null_or_absence_is_read_and_an_array_is_refused() {
        assert_eq!(
            read(json!({"inner": {"flag": true}})).unwrap().inner,
            Some(AllOptional { flag: Some(true) })
        );
        assert_eq!(read(json!({"inner": null})).unwrap().inner, None);
        assert_eq!(read(json!({})).unwrap().inner, None);
        for wrong in [json!([]), json!([true]), json!("x"), json!(1), json!(false)] {
            let err = read(json!({ "inner": wrong })).unwrap_err();
            assert!(err.contains("expected an object"), "{wrong}: {err}");
        }
        assert!(read(json!({"inner": {"other": 1}})).is_err());
    }

    #[test]
    fn without_it_serde_reads_an_empty_array_as_the_defaults() {
        // The reason the helper exists: if this ever fails, serde stopped reading structs from arrays.
        assert_eq!(
            serde_json::from_value::<AllOptional>(json!([])).unwrap(),
            AllOptional::default()
        );
    }
}
