"""The README's code blocks: each type-checks under `mypy --strict` and basedpyright (as
the examples do), and each runs on the golden / real models, with the registry ids
swapped for local directories (there is no hub here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN, REAL

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)

# What a block names -> what it runs on here.
SWAPS = {
    '"all-minilm-l6-v2"': repr(str(REAL / "dense" / "minilm_real" / "model")),
    '"nomic-embed-text-v1.5"': repr(str(GOLDEN / "dense" / "tiny_nomic_mean" / "model")),
    '"bge-base-en-v1.5"': repr(str(GOLDEN / "dense" / "tiny_bge_cls" / "model")),
    '"colbert-v2"': repr(str(GOLDEN / "multivector" / "tiny_colbert_stanford" / "model")),
    '"splade-v3"': repr(str(GOLDEN / "sparse" / "tiny_splade" / "model")),
    '"chronos-bolt-small"': repr(str(GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model")),
    '"colpali-v1.3-hf"': repr(str(GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model")),
    # the tiny models are 32 wide with 128 positions
    "dimension=256": "dimension=16",
    "truncate_dim=64": "truncate_dim=8",
    ".max_length(256)": ".max_length(64)",
}


def test_the_readme_has_code_blocks() -> None:
    assert len(BLOCKS) >= 6


@pytest.fixture(scope="module")
def block_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("readme")
    files = []
    for i, block in enumerate(BLOCKS):
        path = folder / f"readme_block_{i}.py"
        path.write_text(block, encoding="utf-8")
        files.append(path)
    return files


def test_blocks_pass_mypy_strict(block_files: list[Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *map(str, block_files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_blocks_and_examples_pass_pyright(block_files: list[Path]) -> None:
    pyright = shutil.which("basedpyright") or str(Path(sys.executable).parent / "basedpyright")
    targets = [*map(str, block_files), str(ROOT / "examples")]
    done = subprocess.run(
        [pyright, "--level", "error", "--pythonpath", sys.executable, *targets],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index: int, tmp_path: Path) -> None:
    from PIL import Image

    code = BLOCKS[index]
    for name, local in SWAPS.items():
        code = code.replace(name, local)
    pages = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "inputs"
    shutil.copy(pages / "doc_rgb.png", tmp_path / "page1.png")
    shutil.copy(pages / "photo.jpg", tmp_path / "page2.jpg")
    Image.open(pages / "doc_rgb.png").convert("RGB").save(tmp_path / "report.pdf")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
