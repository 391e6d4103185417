//! Printing objects: tables for people, JSON or YAML for machines.

use comfy_table::{Attribute, Cell, ContentArrangement, Table, presets};
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

/// A column of a list table: its header, how to read the cell from an object, and where it shows.
pub struct Column {
    /// The header.
    pub header: &'static str,
    /// The cell.
    pub cell: fn(&Value) -> String,
    /// Shown only with `-o wide`.
    pub wide_only: bool,
    /// The object's own id: kept whole while the terminal has room, cut with a marker only when it has none.
    pub id: bool,
}

impl Column {
    /// A column shown in every table view.
    pub const fn new(header: &'static str, cell: fn(&Value) -> String) -> Self {
        Self {
            header,
            cell,
            wide_only: false,
            id: false,
        }
    }

    /// The object's id column (the first).
    pub const fn id(cell: fn(&Value) -> String) -> Self {
        Self {
            header: "ID",
            cell,
            wide_only: false,
            id: true,
        }
    }

    /// A column shown only with `-o wide`.
    pub const fn wide(header: &'static str, cell: fn(&Value) -> String) -> Self {
        Self {
            header,
            cell,
            wide_only: true,
            id: false,
        }
    }
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

/// How long ago the RFC 3339 time at `pointer` was, kubectl style (`45s`, `12m`, `5h`, `3d`); `-` when absent or
/// unreadable.
pub fn age(v: &Value, pointer: &str) -> String {
    let Some(then) = v
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "-".into();
    };
    age_between(then, jiff::Timestamp::now())
}

fn age_between(then: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let secs = now.as_second().saturating_sub(then.as_second()).max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..7_200 => format!("{}m", secs / 60),
        7_200..172_800 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
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

/// A borderless table. Styles go through comfy-table's cell attributes, never escape codes inside the text, so
/// widths are measured on what shows; colors only when the terminal takes them (`NO_COLOR`, `CLICOLOR_FORCE`).
fn table(arrangement: ContentArrangement) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(arrangement)
        .set_truncation_indicator("…");
    if console::colors_enabled() {
        // Only the text is styled, so padding stays plain spaces that line up (and trim) like any other.
        t.enforce_styling().style_text_only();
    }
    t
}

/// A header or key cell: bold where colors show, plain text otherwise.
fn heading(text: &str) -> Cell {
    let cell = Cell::new(text);
    if console::colors_enabled() {
        cell.add_attribute(Attribute::Bold)
    } else {
        cell
    }
}

/// The id of an object (`-o name`), or its compact JSON when it has none.
pub fn id_of(v: &Value) -> String {
    match v.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => v.to_string(),
    }
}

/// How wide each column may be so that a line of `natural` columns (padding: two spaces between columns) fits in
/// `width`. Nothing changes when everything fits; otherwise the widest non-id columns shrink first, each down to
/// its header's width at least, and only then the id columns.
fn column_caps(natural: &[usize], floors: &[usize], ids: &[bool], width: usize) -> Vec<usize> {
    let room = width.saturating_sub(2 * natural.len().saturating_sub(1));
    if natural.iter().sum::<usize>() <= room {
        return natural.to_vec();
    }
    let id_width: usize = natural
        .iter()
        .zip(ids)
        .filter(|(_, id)| **id)
        .map(|(w, _)| w)
        .sum();
    let others = |cap: usize| -> usize {
        natural
            .iter()
            .zip(floors)
            .zip(ids)
            .filter(|(_, id)| !**id)
            .map(|((w, f), _)| (*w).min(cap.max(*f)))
            .sum()
    };
    let widest = natural.iter().copied().max().unwrap_or(0);
    // The largest cap that fits beside the whole ids (caps only shrink what they bind, so `others` grows with it).
    let cap = (0..=widest).rev().find(|&c| id_width + others(c) <= room);
    let id_cap = match cap {
        Some(_) => usize::MAX,
        None => room.saturating_sub(others(0)).max(4),
    };
    let cap = cap.unwrap_or(0);
    natural
        .iter()
        .zip(floors)
        .zip(ids)
        .map(|((w, f), id)| {
            if *id {
                (*w).min(id_cap)
            } else {
                (*w).min(cap.max(*f))
            }
        })
        .collect()
}

/// The terminal's width when standard output is one.
fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    term.is_term()
        .then(|| term.size_checked().map(|(_, w)| usize::from(w)))
        .flatten()
}

/// The list table of `items`. The default view fits `width` (the terminal's, when output is one): every row is
/// one line, a cell that does not fit is cut with `…`, and ids stay whole unless the terminal has no room for them
/// beside a few characters of every other column. `wide` shows every column with whole cells, however wide.
fn list_table(items: &[Value], columns: &[Column], wide: bool, width: Option<usize>) -> Table {
    // A column without a header shows only when a cell has something (the `archived` marker).
    let shown: Vec<&Column> = columns
        .iter()
        .filter(|c| wide || !c.wide_only)
        .filter(|c| !c.header.is_empty() || items.iter().any(|item| !(c.cell)(item).is_empty()))
        .collect();
    let mut rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| shown.iter().map(|c| one_line(&(c.cell)(item))).collect())
        .collect();
    if let Some(width) = width.filter(|_| !wide) {
        let measure = |s: &str| console::measure_text_width(s);
        let natural: Vec<usize> = shown
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| measure(&r[i]))
                    .chain([measure(c.header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let floors: Vec<usize> = shown.iter().map(|c| measure(c.header).max(3)).collect();
        let ids: Vec<bool> = shown.iter().map(|c| c.id).collect();
        let caps = column_caps(&natural, &floors, &ids, width);
        for row in &mut rows {
            for (cell, cap) in row.iter_mut().zip(&caps) {
                *cell = console::truncate_str(cell, *cap, "…").into_owned();
            }
        }
    }
    let mut t = table(ContentArrangement::Disabled);
    t.set_header(shown.iter().map(|c| heading(c.header)));
    for row in rows {
        t.add_row(row);
    }
    t
}

/// A cell on one line: line breaks and tabs become spaces.
/// `s` on one line with no control character (a stored file name or an agent's text may carry escape sequences
/// that would restyle the terminal or write its clipboard).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Prints a list: a table with `columns` (`-o wide`: all of them), the ids, or the objects as a JSON (YAML)
/// array.
pub fn list(format: Output, items: &[Value], columns: &[Column], empty: &str) -> Result<()> {
    match format {
        Output::Table | Output::Wide => {
            if items.is_empty() {
                eprintln!("{empty}");
                return Ok(());
            }
            let t = list_table(items, columns, format == Output::Wide, terminal_width());
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
        (Output::Table | Output::Wide, Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()),
                    k.as_str(),
                )
            });
            let mut t = table(if format == Output::Wide {
                ContentArrangement::Disabled
            } else {
                ContentArrangement::Dynamic
            });
            for k in keys {
                let value = match &map[k.as_str()] {
                    Value::Null => "-".to_owned(),
                    Value::String(s) => s.clone(),
                    other => without_nulls(other).to_string(),
                };
                t.add_row(vec![heading(k), Cell::new(value)]);
            }
            crate::out!("{}", trim_lines(&t.to_string()));
            Ok(())
        }
        (Output::Table | Output::Wide, other) => data(Output::Json, other),
        _ => data(format, obj),
    }
}

/// Prints data as pretty JSON or YAML, or (`-o name`) the ids of an object or of a list's objects.
pub fn data(format: Output, v: &Value) -> Result<()> {
    let text = match (format, v) {
        (Output::Name, Value::Array(items)) => items.iter().map(id_of).collect::<Vec<_>>().join("\n"),
        (Output::Name, other) => id_of(other),
        _ => data_text(format, v)?,
    };
    if !text.is_empty() {
        crate::out!("{}", text.trim_end());
    }
    Ok(())
}

fn data_text(format: Output, v: &Value) -> Result<String> {
    Ok(match format {
        Output::Yaml => serde_yaml::to_string(v).map_err(|e| CliError::Other(e.to_string()))?,
        _ => serde_json::to_string_pretty(v).map_err(|e| CliError::Other(e.to_string()))?,
    })
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
    fn cells_carry_no_control_characters() {
        assert_eq!(one_line("a\nb\tc\u{1b}[31md\u{7}"), "a b c [31md ");
    }

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
    fn ages_read_like_kubectl() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().expect("time");
        let now = at("2026-05-03T12:00:00Z");
        assert_eq!(age_between(at("2026-05-03T11:59:15Z"), now), "45s");
        assert_eq!(age_between(at("2026-05-03T11:48:00Z"), now), "12m");
        assert_eq!(age_between(at("2026-05-03T07:00:00Z"), now), "5h");
        assert_eq!(age_between(at("2026-04-30T12:00:00Z"), now), "3d");
        assert_eq!(age(&json!({}), "/created_at"), "-");
    }

    #[test]
    fn nested_values_drop_nulls() {
        let v = json!({"provider": {"type": "anthropic", "base_url": null}, "list": [{"a": null, "b": 1}]});
        assert_eq!(
            without_nulls(&v).to_string(),
            r#"{"list":[{"b":1}],"provider":{"type":"anthropic"}}"#
        );
    }

    const COLUMNS: &[Column] = &[
        Column::id(|v| field(v, "/id")),
        Column::new("STATUS", |v| field(v, "/status")),
        Column::new("TITLE", |v| field(v, "/title")),
        Column::wide("ENVIRONMENT", |v| field(v, "/env")),
        Column::new("CREATED", |v| time(v, "/created_at")),
    ];

    fn rows() -> Vec<Value> {
        let long = "a title far too long for the room an eighty column terminal leaves it";
        vec![
            json!({"id": "sesn-01kbx7m2q8c9v3w4e5r6t7y8u9", "status": "idle", "title": long, "env": "env-01kbx7",
                   "created_at": "2026-05-01T10:00:02.120Z"}),
            json!({"id": "sesn-01kbx7m2q8c9v3w4e5r6t7y8zz", "status": "rescheduling", "title": null, "env": "env-2",
                   "created_at": "2026-05-01T10:00:03Z"}),
        ]
    }

    #[test]
    fn a_narrow_table_cuts_cells_keeps_ids_and_lines_up() {
        let items = rows();
        let text = trim_lines(&list_table(&items, COLUMNS, false, Some(60)).to_string());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            !text.contains("ENVIRONMENT"),
            "wide-only columns stay out:\n{text}"
        );
        let starts: Vec<usize> = ["STATUS", "TITLE", "CREATED"]
            .iter()
            .map(|h| lines[0].find(h).expect("header"))
            .collect();
        for (line, item) in lines[1..].iter().zip(&items) {
            assert!(line.chars().count() <= 60, "{line}");
            assert!(line.starts_with(item["id"].as_str().unwrap()), "{line}");
            let chars: Vec<char> = line.chars().collect();
            for &p in &starts {
                assert!(chars[p] != ' ' && chars[p - 1] == ' ', "column {p} of {line}");
            }
        }
        assert!(lines[1].contains('…') && !text.contains("eighty"), "{text}");
    }

    #[test]
    fn a_wide_table_shows_every_column_whole() {
        let items = rows();
        let text = trim_lines(&list_table(&items, COLUMNS, true, Some(60)).to_string());
        assert!(
            text.contains("ENVIRONMENT") && text.contains("env-01kbx7"),
            "{text}"
        );
        assert!(text.contains("leaves it") && !text.contains('…'), "{text}");
    }

    #[test]
    fn columns_shrink_widest_first_and_ids_last() {
        // Fits: unchanged.
        assert_eq!(
            column_caps(&[10, 5, 5], &[2, 3, 3], &[true, false, false], 30),
            [10, 5, 5]
        );
        // The widest other column shrinks first, down to its floor; the id stays.
        assert_eq!(
            column_caps(&[10, 40, 6], &[2, 5, 3], &[true, false, false], 40),
            [10, 20, 6]
        );
        assert_eq!(
            column_caps(&[10, 40, 40], &[2, 5, 5], &[true, false, false], 40),
            [10, 13, 13]
        );
        // No room even at the floors: the id shrinks too.
        assert_eq!(
            column_caps(&[30, 40, 40], &[2, 5, 5], &[true, false, false], 30),
            [16, 5, 5]
        );
    }

    #[test]
    fn table_lines_have_no_padding() {
        assert_eq!(trim_lines(" a   b  \n cc  d \n"), "a   b\ncc  d");
    }
}
