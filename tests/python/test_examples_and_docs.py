"""Every example runs on the golden models; the README's model table matches models.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN

ROOT = Path(__file__).resolve().parents[2]

EXAMPLES = {
    "semantic_search.py": GOLDEN / "dense" / "tiny_bge_cls" / "model",
    "colbert_rerank.py": GOLDEN / "multivector" / "tiny_colbert_pylate" / "model",
    "sparse_search.py": GOLDEN / "sparse" / "tiny_splade" / "model",
    "forecast.py": GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model",
    "vision_search.py": GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model",
    "ray_embed.py": GOLDEN / "dense" / "tiny_bge_cls" / "model",
}


def test_every_example_is_exercised() -> None:
    assert {p.name for p in (ROOT / "examples").glob("*.py")} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name: str, tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "examples" / name), "--model", str(EXAMPLES[name])]
    if name == "forecast.py":
        args += ["--output", str(tmp_path / "forecast.png")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_readme_model_table_is_in_sync() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from model_table import table
    finally:
        sys.path.pop(0)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table() in readme, "run scripts/model_table.py --write"
    ids = {m["id"] for m in json.loads((ROOT / "models.json").read_text())["models"]}
    assert all(f"`{i}`" in readme for i in ids)


def test_the_factory_overloads_list_every_registry_id() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from stub_ids import block
    finally:
        sys.path.pop(0)
    assert block() in (ROOT / "tessera.pyi").read_text(encoding="utf-8"), (
        "run scripts/stub_ids.py --write"
    )
