//! Model-facing JSON schemas generated from the tools' input types: a plain `object` schema with `properties` and
//! `required`, everything inlined, without the `$schema`, titles, Rust number formats or `null` alternatives that
//! a generator adds and some model providers refuse.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// The description (from the type's doc comment) and the input schema of a tool whose input is `T`.
pub(crate) fn tool_schema<T: JsonSchema>() -> (String, Value) {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    let description = match &mut schema {
        Value::Object(root) => {
            root.remove("title");
            root.remove("description")
        }
        _ => None,
    };
    simplify(&mut schema);
    let description = description
        .as_ref()
        .and_then(Value::as_str)
        .map(unwrap_lines)
        .unwrap_or_default();
    (description, schema)
}

/// Removes what providers do not need from a schema and everything under it.
fn simplify(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    map.remove("format");
    if map.get("default") == Some(&Value::Null) {
        map.remove("default");
    }
    drop_null_type(map);
    drop_null_alternative(map);
    if let Some(Value::String(text)) = map.get_mut("description") {
        *text = unwrap_lines(text);
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(simplify);
    }
    if let Some(items) = map.get_mut("items") {
        simplify(items);
    }
}

/// `"type": ["integer", "null"]` becomes `"type": "integer"`: leaving a property out already means "none".
fn drop_null_type(map: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            map.insert("type".to_owned(), only);
        }
    }
}

/// `"anyOf": [S, {"type": "null"}]` becomes `S` (keeping the property's own description).
fn drop_null_alternative(map: &mut Map<String, Value>) {
    let Some(Value::Array(alternatives)) = map.get("anyOf") else {
        return;
    };
    let rest: Vec<&Value> = alternatives
        .iter()
        .filter(|a| a.get("type") != Some(&Value::from("null")))
        .collect();
    if let [Value::Object(only)] = rest.as_slice() {
        let only = only.clone();
        map.remove("anyOf");
        for (key, value) in only {
            map.entry(key).or_insert(value);
        }
    }
}

/// A doc comment's lines joined into sentences (paragraphs stay apart).
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_doc_lines_become_one_sentence() {
        assert_eq!(
            unwrap_lines("Run a\ncommand.\n\nSecond."),
            "Run a command.\n\nSecond."
        );
    }
}
