#!/usr/bin/env python3
"""Writes the typed overloads of the `Tessera` factory into tessera.pyi from models.json:
a registry id (or its Hugging Face repo id) as a literal gives the class of its paradigm,
so `Tessera("all-minilm-l6-v2").encode_batch(...)` type-checks. Prints the block; `--write`
replaces it in place between the `# ids:start` and `# ids:end` markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tessera.pyi"
START, END = "# ids:start", "# ids:end"
CLASSES = {
    "dense": "TesseraDense",
    "sparse": "TesseraSparse",
    "multivector": "TesseraMultiVector",
    "timeseries": "TesseraTimeSeries",
    "vision": "TesseraVision",
}


def block() -> str:
    models = json.loads((ROOT / "models.json").read_text(encoding="utf-8"))["models"]
    lines = [START]
    for paradigm, cls in CLASSES.items():
        names = sorted(
            {m["id"] for m in models if m["paradigm"] == paradigm}
            | {m["huggingface_id"] for m in models if m["paradigm"] == paradigm}
        )
        alias = f"_{cls[len('Tessera'):]}Id"
        lines.append(f"{alias} = Literal[")
        lines.extend(f'    "{name}",' for name in names)
        lines.append("]")
    lines.append("")  # ruff's blank line between the aliases and the overloads
    for cls in CLASSES.values():
        alias = f"_{cls[len('Tessera'):]}Id"
        lines += ["@overload", f"def Tessera(model: {alias}, **options: Any) -> {cls}: ..."]
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    text = block()
    if "--write" not in sys.argv:
        print(text)
        return
    content = STUB.read_text(encoding="utf-8")
    head, _, rest = content.partition(START)
    _, _, tail = rest.partition(END)
    STUB.write_text(head + text + tail, encoding="utf-8")


if __name__ == "__main__":
    main()
