#!/usr/bin/env python3
"""Prints the README's model table from models.json; `--write` updates README.md in place
between the `<!-- models:start -->` and `<!-- models:end -->` markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- models:start -->", "<!-- models:end -->"


def table() -> str:
    models = json.loads((ROOT / "models.json").read_text(encoding="utf-8"))["models"]
    lines = [
        "| id | paradigm | Hugging Face repo | dim | Matryoshka | max length | license | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        dims = ", ".join(str(d) for d in m.get("matryoshka_dimensions", [])) or "—"
        length = m.get("max_length") or m.get("context_length") or "—"
        repo = m["huggingface_id"]
        runs = "yes" if m["supported"] else f"not yet ({m['architecture']})"
        lines.append(
            f"| `{m['id']}` | {m['paradigm']} | [{repo}](https://huggingface.co/{repo}) "
            f"| {m.get('dimension') or '—'} | {dims} | {length} | {m['license']} | {runs} |"
        )
    return "\n".join(lines)


def main() -> None:
    text = table()
    if "--write" not in sys.argv:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text(encoding="utf-8")
    head, _, rest = content.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
