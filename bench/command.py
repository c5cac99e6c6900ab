"""The command line that produced a report, as a reader of the repository would type it."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def relative(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else unchanged."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def command_line(argv: list[str] | None = None) -> str:
    """``python bench/x.py ...`` with every absolute path inside the repository made relative
    (reports are committed; /work/main/... means nothing on another machine)."""
    argv = sys.argv if argv is None else argv
    return " ".join(["python", *(relative(a) if a.startswith("/") else a for a in argv)])


def write_report(stem: Path, command: str, rows: list[dict], lines: list[str]) -> None:
    """``stem``.json (the command and the rows) and ``stem``.md (``lines``), each written
    atomically; the Markdown also goes to stdout."""
    import json

    from densnet_cli.data.atomic import write_text

    write_text(stem.with_suffix(".json"), json.dumps({"command": command, "rows": rows}, indent=1))
    write_text(stem.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
