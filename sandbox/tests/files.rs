//! `read`, `write`, `edit`, `glob` and `grep` through the real daemon.

mod common;

use common::{call, start, start_with};
use serde_json::json;

#[tokio::test]
async fn write_creates_parent_directories_and_read_numbers_lines() {
    let sandbox = start().await;
    let client = sandbox.client();
    let written = call(
        client,
        "write",
        json!({"file_path": "a/b/c.txt", "content": "one\ntwo\nthree\n"}),
    )
    .await;
    assert!(!written.is_error, "{}", written.text());
    assert!(written.text().starts_with("Created"), "{}", written.text());
    let path = sandbox.workspace().join("a/b/c.txt");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");

    let read = call(client, "read", json!({"file_path": "a/b/c.txt"})).await;
    assert_eq!(read.text(), "     1\tone\n     2\ttwo\n     3\tthree\n");
    // Absolute paths work too.
    let read = call(client, "read", json!({"file_path": path, "view_range": [2, 2]})).await;
    assert_eq!(read.text(), "     2\ttwo\n");
    let read = call(
        client,
        "read",
        json!({"file_path": "a/b/c.txt", "view_range": [2, -1]}),
    )
    .await;
    assert_eq!(read.text(), "     2\ttwo\n     3\tthree\n");

    let overwritten = call(
        client,
        "write",
        json!({"file_path": "a/b/c.txt", "content": "new"}),
    )
    .await;
    assert!(
        overwritten.text().starts_with("Overwrote"),
        "{}",
        overwritten.text()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
}

#[tokio::test]
async fn read_pages_long_files_and_cuts_long_lines() {
    let sandbox = start_with(&["--max-read-lines=10", "--max-line-chars=20"]).await;
    let client = sandbox.client();
    let content: String = (1..=25).map(|i| format!("line {i}\n")).collect();
    std::fs::write(sandbox.workspace().join("long.txt"), content).unwrap();
    let first = call(client, "read", json!({"file_path": "long.txt"})).await;
    assert!(first.text().contains("    10\tline 10\n"), "{}", first.text());
    assert!(!first.text().contains("line 11"), "{}", first.text());
    assert!(
        first.text().contains("showing lines 1-10 of 25"),
        "{}",
        first.text()
    );
    assert!(first.text().contains("view_range [11, ...]"), "{}", first.text());
    let last = call(
        client,
        "read",
        json!({"file_path": "long.txt", "view_range": [20, 0]}),
    )
    .await;
    assert!(last.text().starts_with("    20\tline 20\n"), "{}", last.text());
    assert!(last.text().ends_with("    25\tline 25\n"), "{}", last.text());

    std::fs::write(sandbox.workspace().join("wide.txt"), "x".repeat(100)).unwrap();
    let wide = call(client, "read", json!({"file_path": "wide.txt"})).await;
    assert!(
        wide.text().contains("[line truncated: 80 more characters]"),
        "{}",
        wide.text()
    );
}

#[tokio::test]
async fn read_refuses_what_it_cannot_show() {
    let sandbox = start().await;
    let client = sandbox.client();
    let ws = sandbox.workspace();
    std::fs::write(ws.join("bin.dat"), [0u8, 1, 2, 3, 255]).unwrap();
    std::fs::write(ws.join("empty.txt"), "").unwrap();
    std::fs::write(ws.join("three.txt"), "a\nb\nc\n").unwrap();
    std::fs::create_dir(ws.join("dir")).unwrap();
    for (input, expected) in [
        (json!({"file_path": "missing.txt"}), "does not exist"),
        (json!({"file_path": "bin.dat"}), "binary file (5 bytes)"),
        (json!({"file_path": "dir"}), "is a directory"),
        (
            json!({"file_path": "three.txt", "view_range": [5, 9]}),
            "has only 3 lines",
        ),
        (
            json!({"file_path": "three.txt", "view_range": [0, 2]}),
            "at least 1",
        ),
        (
            json!({"file_path": "three.txt", "view_range": [3, 2]}),
            "before its start",
        ),
        (
            json!({"file_path": "three.txt", "view_range": [1]}),
            "invalid input for read",
        ),
        (json!({"file_path": ""}), "path is empty"),
        (json!({"path": "three.txt"}), "missing field `file_path`"),
    ] {
        let result = call(client, "read", input.clone()).await;
        assert!(result.is_error, "{input} should fail: {}", result.text());
        assert!(result.text().contains(expected), "{input}: {}", result.text());
    }
    let empty = call(client, "read", json!({"file_path": "empty.txt"})).await;
    assert!(!empty.is_error);
    assert!(empty.text().contains("is empty"), "{}", empty.text());
}

#[tokio::test]
async fn edit_replaces_exactly_one_occurrence_and_shows_the_result() {
    let sandbox = start().await;
    let client = sandbox.client();
    let path = sandbox.workspace().join("code.rs");
    std::fs::write(&path, "fn main() {\n    println!(\"hi\");\n}\n").unwrap();
    let result = call(
        client,
        "edit",
        json!({"file_path": "code.rs", "old_string": "\"hi\"", "new_string": "\"hello\""}),
    )
    .await;
    assert!(!result.is_error, "{}", result.text());
    assert!(
        result.text().contains("Replaced 1 occurrence"),
        "{}",
        result.text()
    );
    assert!(
        result.text().contains("     2\t    println!(\"hello\");"),
        "{}",
        result.text()
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "fn main() {\n    println!(\"hello\");\n}\n"
    );
}

#[tokio::test]
async fn edit_explains_missing_and_ambiguous_text_and_writes_nothing() {
    let sandbox = start().await;
    let client = sandbox.client();
    let path = sandbox.workspace().join("dup.txt");
    let original = "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n";
    std::fs::write(&path, original).unwrap();

    let missing = call(
        client,
        "edit",
        json!({"file_path": "dup.txt", "old_string": "w = 9", "new_string": "w = 0"}),
    )
    .await;
    assert!(missing.is_error);
    assert!(missing.text().contains("was not found"), "{}", missing.text());

    let ambiguous = call(
        client,
        "edit",
        json!({"file_path": "dup.txt", "old_string": "x = 1", "new_string": "x = 2"}),
    )
    .await;
    assert!(ambiguous.is_error);
    assert!(ambiguous.text().contains("found 3 times"), "{}", ambiguous.text());
    assert!(ambiguous.text().contains("lines 1, 3, 5"), "{}", ambiguous.text());
    assert!(ambiguous.text().contains("replace_all"), "{}", ambiguous.text());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        original,
        "nothing written on failure"
    );

    for (input, expected) in [
        (
            json!({"file_path": "dup.txt", "old_string": "", "new_string": "a"}),
            "old_string is empty",
        ),
        (
            json!({"file_path": "dup.txt", "old_string": "y", "new_string": "y"}),
            "identical",
        ),
        (
            json!({"file_path": "nope.txt", "old_string": "a", "new_string": "b"}),
            "does not exist",
        ),
        (
            json!({"file_path": "dup.txt", "old_string": "a"}),
            "missing field `new_string`",
        ),
    ] {
        let result = call(client, "edit", input.clone()).await;
        assert!(result.is_error, "{input}");
        assert!(result.text().contains(expected), "{input}: {}", result.text());
    }

    let all = call(
        client,
        "edit",
        json!({"file_path": "dup.txt", "old_string": "x = 1", "new_string": "x = 2", "replace_all": true}),
    )
    .await;
    assert!(!all.is_error, "{}", all.text());
    assert!(all.text().contains("Replaced 3 occurrences"), "{}", all.text());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "x = 2\ny = 2\nx = 2\nz = 3\nx = 2\n"
    );
}

#[tokio::test]
async fn glob_lists_matching_files_sorted_and_honours_gitignore() {
    let sandbox = start().await;
    let client = sandbox.client();
    let ws = sandbox.workspace();
    for file in [
        "src/b.rs",
        "src/a.rs",
        "src/nested/c.rs",
        "README.md",
        "target/gen.rs",
        ".hidden/d.rs",
    ] {
        let path = ws.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }
    std::fs::write(ws.join(".gitignore"), "target/\n").unwrap();
    let w = ws.display();
    let all = call(client, "glob", json!({"pattern": "**/*.rs"})).await;
    assert_eq!(
        all.text(),
        format!("{w}/.hidden/d.rs\n{w}/src/a.rs\n{w}/src/b.rs\n{w}/src/nested/c.rs")
    );
    let top = call(client, "glob", json!({"pattern": "*.rs", "path": "src"})).await;
    assert_eq!(top.text(), format!("{w}/src/a.rs\n{w}/src/b.rs"));
    let absolute = call(client, "glob", json!({"pattern": format!("{w}/src/**/c.rs")})).await;
    assert_eq!(absolute.text(), format!("{w}/src/nested/c.rs"));
    let none = call(client, "glob", json!({"pattern": "*.py"})).await;
    assert!(!none.is_error);
    assert!(none.text().starts_with("No files match"), "{}", none.text());
    let bad = call(client, "glob", json!({"pattern": "src/[a"})).await;
    assert!(
        bad.is_error && bad.text().contains("invalid glob"),
        "{}",
        bad.text()
    );
    let not_dir = call(client, "glob", json!({"pattern": "*", "path": "README.md"})).await;
    assert!(
        not_dir.is_error && not_dir.text().contains("not a directory"),
        "{}",
        not_dir.text()
    );
}

#[tokio::test]
async fn glob_and_grep_cap_their_results() {
    let sandbox = start_with(&["--max-results=5"]).await;
    let client = sandbox.client();
    for i in 0..8 {
        std::fs::write(sandbox.workspace().join(format!("f{i}.txt")), "match\nmatch\n").unwrap();
    }
    let glob = call(client, "glob", json!({"pattern": "*.txt"})).await;
    assert_eq!(glob.text().lines().count(), 6, "{}", glob.text());
    assert!(glob.text().contains("[3 more files match"), "{}", glob.text());
    let grep = call(client, "grep", json!({"pattern": "match"})).await;
    assert!(grep.text().contains("[11 more matching lines"), "{}", grep.text());
}

#[tokio::test]
async fn grep_finds_lines_as_file_line_text() {
    let sandbox = start().await;
    let client = sandbox.client();
    let ws = sandbox.workspace();
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(ws.join("src/one.rs"), "fn alpha() {}\nfn beta() {}\n").unwrap();
    std::fs::write(ws.join("src/two.rs"), "// nothing\nfn alphabet() {}\n").unwrap();
    std::fs::write(ws.join("blob.bin"), b"alpha\0binary").unwrap();
    let w = ws.display();
    let found = call(client, "grep", json!({"pattern": r"fn alpha\w*"})).await;
    assert_eq!(
        found.text(),
        format!("{w}/src/one.rs:1:fn alpha() {{}}\n{w}/src/two.rs:2:fn alphabet() {{}}\n")
    );
    let in_file = call(client, "grep", json!({"pattern": "beta", "path": "src/one.rs"})).await;
    assert_eq!(in_file.text(), format!("{w}/src/one.rs:2:fn beta() {{}}\n"));
    let none = call(client, "grep", json!({"pattern": "gamma"})).await;
    assert!(
        !none.is_error && none.text().starts_with("No matches"),
        "{}",
        none.text()
    );
    let bad = call(client, "grep", json!({"pattern": "(unclosed"})).await;
    assert!(
        bad.is_error && bad.text().contains("invalid regular expression"),
        "{}",
        bad.text()
    );
    let missing = call(client, "grep", json!({"pattern": "a", "path": "nowhere"})).await;
    assert!(
        missing.is_error && missing.text().contains("does not exist"),
        "{}",
        missing.text()
    );
}

#[tokio::test]
async fn inputs_of_the_wrong_type_are_tool_errors_for_every_file_tool() {
    let sandbox = start().await;
    let client = sandbox.client();
    for (tool, input, expected) in [
        (
            "write",
            json!({"file_path": 1, "content": "x"}),
            "invalid type: integer `1`",
        ),
        ("write", json!({"file_path": "x"}), "missing field `content`"),
        (
            "edit",
            json!({"file_path": "x", "old_string": "a", "new_string": "b", "replace_all": "yes"}),
            "invalid type",
        ),
        ("glob", json!({"pattern": ["*"]}), "invalid type"),
        ("grep", json!({"pattern": "a", "path": false}), "invalid type"),
        ("read", json!(null), "expected a JSON object"),
    ] {
        let result = call(client, tool, input.clone()).await;
        assert!(result.is_error, "{tool} {input}");
        assert!(
            result.text().contains(&format!("invalid input for {tool}")),
            "{tool}: {}",
            result.text()
        );
        assert!(
            result.text().contains(expected),
            "{tool} {input}: {}",
            result.text()
        );
    }
    let write_to_dir = call(client, "write", json!({"file_path": ".", "content": "x"})).await;
    assert!(
        write_to_dir.is_error && write_to_dir.text().contains("is a directory"),
        "{}",
        write_to_dir.text()
    );
}
