//! Printing objects: tables for people, JSON or YAML for machines.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

use crate::{
    args::Output,
    error::{CliError, Result},
};

/// Writes one line to standard output; a closed pipe (`corral events -f | head`) ends the command quietly.
pub fn line(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::Closed,
            _ => CliError::Other(format!("writing to standard output: {e}")),
        })
}

/// `println!` that returns [`CliError::Closed`] from the calling function when standard output is gone.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(&format!($($arg)*))?
    };
}

/// A column of a list table: its header and how to read the cell from an object.
pub struct Column {
    /// The header.
    pub header: &'static str,
    /// The cell.
    pub cell: fn(&Value) -> String,
}

/// The string at `pointer` (a JSON pointer), `-` when absent or null; numbers and booleans as text.
pub fn field(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// An RFC 3339 time shortened to the second (`2026-05-01 10:00:02Z`), `-` when absent.
pub fn time(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer).and_then(Value::as_str) {
        Some(t) => short_time(t),
        None => "-".into(),
    }
}

/// `2026-05-01T10:00:02.123Z` → `2026-05-01 10:00:02Z`; anything else unchanged.
pub fn short_time(t: &str) -> String {
    let Some((date, rest)) = t.split_once('T') else {
        return t.to_owned();
    };
    let clock: String = rest.chars().take(8).collect();
    let zone = if rest.ends_with('Z') { "Z" } else { "" };
    format!("{date} {clock}{zone}")
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// Prints a list: a table with `columns`, or the objects as a JSON (YAML) array.
pub fn list(format: Output, items: &[Value], columns: &[Column], empty: &str) -> Result<()> {
    match format {
        Output::Table => {
            if items.is_empty() {
                eprintln!("{empty}");
                return Ok(());
            }
            let mut t = table();
            t.set_header(
                columns
                    .iter()
                    .map(|c| console::style(c.header).bold().to_string()),
            );
            for item in items {
                t.add_row(columns.iter().map(|c| (c.cell)(item)));
            }
            crate::out!("{}", trim_lines(&t.to_string()));
            Ok(())
        }
        _ => data(format, &Value::Array(items.to_vec())),
    }
}

/// Fields shown first in an object's table, in this order; the rest follow alphabetically.
const FIRST: &[&str] = &[
    "id",
    "type",
    "name",
    "status",
    "title",
    "version",
    "agent",
    "environment_id",
];

/// `v` without null members, recursively (a table shows `"provider":{"type":"anthropic"}`, not every unset
/// option).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Prints one object: a two-column table of its top-level fields (nested values as compact JSON without nulls),
/// or JSON (YAML).
pub fn object(format: Output, obj: &Value) -> Result<()> {
    match (format, obj) {
        (Output::Table, Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()),
                    k.as_str(),
                )
            });
            let mut t = table();
            for k in keys {
                let value = match &map[k.as_str()] {
                    Value::Null => "-".to_owned(),
                    Value::String(s) => s.clone(),
                    other => without_nulls(other).to_string(),
                };
                t.add_row(vec![console::style(k).bold().to_string(), value]);
            }
            crate::out!("{}", trim_lines(&t.to_string()));
            Ok(())
        }
        (Output::Table, other) => data(Output::Json, other),
        _ => data(format, obj),
    }
}

/// Prints data as pretty JSON or YAML.
pub fn data(format: Output, v: &Value) -> Result<()> {
    let text = match format {
        Output::Yaml => serde_yaml::to_string(v).map_err(|e| CliError::Other(e.to_string()))?,
        _ => serde_json::to_string_pretty(v).map_err(|e| CliError::Other(e.to_string()))?,
    };
    crate::out!("{}", text.trim_end());
    Ok(())
}

/// comfy-table pads every line to the widest; people and `grep` prefer no trailing spaces.
fn trim_lines(s: &str) -> String {
    s.lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_and_times_read_for_people() {
        let v = json!({"a": {"b": "x"}, "n": 3, "z": null, "e": ""});
        assert_eq!(field(&v, "/a/b"), "x");
        assert_eq!(field(&v, "/n"), "3");
        assert_eq!(field(&v, "/z"), "-");
        assert_eq!(field(&v, "/e"), "-");
        assert_eq!(field(&v, "/missing"), "-");
        assert_eq!(short_time("2026-05-01T10:00:02.120Z"), "2026-05-01 10:00:02Z");
        assert_eq!(short_time("soon"), "soon");
    }

    #[test]
    fn nested_values_drop_nulls() {
        let v = json!({"provider": {"type": "anthropic", "base_url": null}, "list": [{"a": null, "b": 1}]});
        assert_eq!(
            without_nulls(&v).to_string(),
            r#"{"list":[{"b":1}],"provider":{"type":"anthropic"}}"#
        );
    }

    #[test]
    fn table_lines_have_no_padding() {
        assert_eq!(trim_lines(" a   b  \n cc  d \n"), "a   b\ncc  d");
    }
}
