//! Tables in a real terminal: every list command under a pseudo-terminal of 140 and of 80 columns, with colors
//! and with `NO_COLOR`, each data column starting under its header, no line wider than the terminal, and ids
//! whole on one line.

use crate::harness::{Gateway, Tenant};

/// Where each header starts: the first character, and every character after two spaces.
pub fn column_starts(header: &str) -> Vec<usize> {
    let chars: Vec<char> = header.chars().collect();
    (0..chars.len())
        .filter(|&i| chars[i] != ' ' && (i == 0 || (i >= 2 && chars[i - 1] == ' ' && chars[i - 2] == ' ')))
        .collect()
}

/// Checks one table as the terminal shows it (escape codes removed): `rows` data lines, each at most `cols`
/// wide (`None`: `-o wide`, as wide as it needs), each column's cell starting where its header does, and each
/// row starting with its whole id.
pub fn assert_table(screen: &str, cols: Option<usize>, ids: &[&str]) {
    let visible = console::strip_ansi_codes(screen).to_string();
    let lines: Vec<&str> = visible.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        ids.len() + 1,
        "one line per object and a header:\n{visible}"
    );
    let starts = column_starts(lines[0]);
    assert!(starts.len() >= 4, "a header of several columns:\n{visible}");
    for (line, id) in lines[1..].iter().zip(ids) {
        if let Some(cols) = cols {
            assert!(
                line.chars().count() <= cols,
                "wider than {cols} columns: {line:?}\n{visible}"
            );
        }
        assert!(
            line.starts_with(&format!("{id} ")),
            "{id} is not whole at the start of {line:?}\n{visible}"
        );
        let chars: Vec<char> = line.chars().collect();
        for &p in &starts {
            assert!(
                p < chars.len() && chars[p] != ' ' && (p == 0 || chars[p - 1] == ' '),
                "the cell at column {p} is not under its header in {line:?}\n{visible}"
            );
        }
    }
}

/// Runs a list command in terminals of 140 and 80 columns, colored and not, and in `-o wide`.
pub fn check_everywhere(t: &Tenant, args: &[&str], ids: &[&str]) {
    for cols in [140u16, 80] {
        let colored = t.in_terminal(args, cols, false);
        assert!(
            colored.contains("\u{1b}[1m"),
            "a terminal shows bold headers: {colored:?}"
        );
        assert_table(&colored, Some(usize::from(cols)), ids);
        let plain = t.in_terminal(args, cols, true);
        assert!(
            !plain.contains('\u{1b}'),
            "NO_COLOR means no escape codes: {plain:?}"
        );
        assert_table(&plain, Some(usize::from(cols)), ids);
    }
    let mut wide = args.to_vec();
    wide.extend(["-o", "wide"]);
    assert_table(&t.in_terminal(&wide, 80, false), None, ids);
}

#[test]
fn every_list_lines_up_in_a_real_terminal() {
    let gw = Gateway::start();
    let t = gw.tenant();
    let (agent, env, first) = t.session();
    let long = "a title long enough that it cannot fit beside the other columns of an eighty column terminal";
    let second = t
        .run(&[
            "sessions", "create", "--agent", &agent, "--env", &env, "--title", long, "-o", "name",
        ])
        .ok()
        .trim()
        .to_owned();
    assert!(
        second.starts_with("sesn-"),
        "-o name prints the id alone: {second:?}"
    );
    t.run(&["sessions", "archive", &first]).ok();

    check_everywhere(&t, &["agents", "list"], &[&agent]);
    check_everywhere(&t, &["agents", "versions", &agent], &[&agent]);
    check_everywhere(&t, &["environments", "list"], &[&env]);
    check_everywhere(
        &t,
        &["sessions", "list", "--include-archived"],
        &[&second, &first],
    );

    // The default view cuts what does not fit with a marker; `-o wide` shows it whole, with more columns.
    let narrow = console::strip_ansi_codes(&t.in_terminal(&["sessions", "list"], 80, true)).to_string();
    assert!(!narrow.contains(long) && narrow.contains('…'), "{narrow}");
    let wide = t.in_terminal(&["sessions", "list", "-o", "wide"], 80, true);
    assert!(
        wide.contains(long) && wide.contains("ENVIRONMENT") && wide.contains(&env),
        "{wide}"
    );

    // One object's field table: keys bold, values in one column that wraps within the terminal.
    for no_color in [false, true] {
        let screen = t.in_terminal(&["agents", "get", &agent], 80, no_color);
        let visible = console::strip_ansi_codes(&screen).to_string();
        let lines: Vec<&str> = visible.lines().filter(|l| !l.trim().is_empty()).collect();
        let value_at = lines[0].find("  ").map(|i| i + 2).expect("a key and a value");
        let value_at = value_at + lines[0][value_at..].len() - lines[0][value_at..].trim_start().len();
        for line in &lines {
            assert!(
                line.chars().count() <= 80,
                "wider than the terminal: {line:?}\n{visible}"
            );
            let chars: Vec<char> = line.chars().collect();
            assert!(
                chars.len() > value_at && chars[value_at] != ' ' && chars[value_at - 1] == ' ',
                "the value is not in its column in {line:?}\n{visible}"
            );
        }
        assert_eq!(no_color, !screen.contains('\u{1b}'), "{screen:?}");
    }

    if let Some(path) = std::env::var_os("CORRAL_CLI_CAPTURES") {
        write_captures(&t, std::path::Path::new(&path), &agent);
    }
}

/// Writes what the list commands show in terminals of 140 and 80 columns (hack/cli-captures.sh).
fn write_captures(t: &Tenant, path: &std::path::Path, agent: &str) {
    let mut doc = String::from(
        "# The CLI in a terminal\n\nCaptured from a real pseudo-terminal against a live gateway by \
         `hack/cli-captures.sh` (the `terminal` integration test); ids and times change with each run.\n",
    );
    let shots: [(&[&str], u16); 7] = [
        (&["agents", "list"], 80),
        (&["agents", "get", agent], 80),
        (&["environments", "list"], 80),
        (&["sessions", "list", "--include-archived"], 140),
        (&["sessions", "list", "--include-archived"], 80),
        (&["sessions", "list", "--include-archived", "-o", "wide"], 80),
        (&["sessions", "list", "-o", "name"], 80),
    ];
    for (args, cols) in shots {
        let screen = t.in_terminal(args, cols, true);
        doc.push_str(&format!(
            "\n## `corral {}` ({cols} columns)\n\n```text\n{}\n```\n",
            args.join(" "),
            screen.trim_end()
        ));
    }
    std::fs::write(path, doc).expect("write the captures");
}
