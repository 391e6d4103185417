#!/usr/bin/env python3
"""Adds a "previous" column to the first table of a new docs/benchmarks.md: each row's value in the table it
replaces, found by the row's figure (its first cell), so a regression shows beside the figure it regressed from.

    bench/previous.py OLD.md NEW.md   (rewrites NEW.md in place; OLD.md may be missing)

A row whose figure was renamed names its old figure in RENAMED; a figure the old table lacks shows "—". An old
table that already had a "previous" column is read by its header, so the column never nests.
"""

import sys

# New figure text -> the old table's figure text it replaces (a renamed or redefined row).
RENAMED = {
    "session log appends, one Redis, 64 concurrent sessions, `appendfsync always`, release: 1 event per call / 4 "
    "events per call": "session log: 32 concurrent sessions",
    "session log: fenced append, 1 event per call (`appendfsync always`), release": "session log: fenced append, 1 "
    "event per call (`appendfsync always`)",
    "session log: fenced append, 16 events per call, release": "session log: fenced append, 16 events per call",
}


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row (pipes inside backticks are not expected in figures)."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def first_table(lines: list[str]) -> tuple[int, int]:
    """The [start, end) line range of the first table (header included)."""
    start = next((i for i, l in enumerate(lines) if l.startswith("| figure |")), -1)
    if start < 0:
        return (-1, -1)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return (start, end)


def old_values(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    start, end = first_table(lines)
    if start < 0:
        return {}
    header = cells(lines[start])
    value = header.index("value") if "value" in header else 1
    out = {}
    for line in lines[start + 2 : end]:
        row = cells(line)
        if len(row) > value:
            out[row[0]] = row[value]
    return out


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    old = old_values(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        lines = f.read().splitlines()
    start, end = first_table(lines)
    if start < 0:
        return 0
    rewritten = []
    for i, line in enumerate(lines[start:end]):
        row = cells(line)
        if i == 0:
            row.insert(2, "previous run")
        elif i == 1:
            row.insert(2, "---")
        else:
            figure = row[0]
            row.insert(2, old.get(figure) or old.get(RENAMED.get(figure, "")) or "—")
        rewritten.append("| " + " | ".join(row) + " |")
    lines[start:end] = rewritten
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
