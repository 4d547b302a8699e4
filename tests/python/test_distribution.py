"""What users install: the source distribution's contents and metadata, and secrets kept
out of everything Tessera prints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import GOLDEN

import tessera

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_TopSecretToken0123456789"


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    maturin = shutil.which("maturin") or str(Path(sys.executable).parent / "maturin")
    out = tmp_path_factory.mktemp("sdist")
    subprocess.run([maturin, "sdist", "-o", str(out)], cwd=ROOT, check=True, capture_output=True)
    (archive,) = out.glob("*.tar.gz")
    return archive


def test_sdist_is_named_for_pypi_and_carries_the_license(sdist: Path) -> None:
    assert sdist.name.startswith("tessera_embeddings-")
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
        pkg_info = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("PKG-INFO")))
        assert pkg_info is not None
        metadata = pkg_info.read().decode()
    assert "Name: tessera-embeddings" in metadata
    assert "Apache-2.0" in metadata
    assert "LICENSE" in names and "Cargo.toml" in names and "Cargo.lock" in names
    assert "python/tessera/__init__.pyi" in names and "python/tessera/py.typed" in names


def test_sdist_holds_no_stray_files(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    allowed_roots = {"src", "python", "Cargo.toml", "Cargo.lock", "LICENSE", "README.md"}
    allowed_roots |= {"models.json", "pyproject.toml", "PKG-INFO"}
    strays = [n for n in names if n.split("/")[0] not in allowed_roots]
    assert strays == []


def test_the_token_is_in_no_repr_message_or_log(tmp_path: Path) -> None:
    env = {**os.environ, "HF_TOKEN": SECRET, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": ""}
    code = f"""
import tessera
from tessera import TesseraDense
classes = ("Dense", "Sparse", "MultiVector", "Vision", "TimeSeries")
for cls in (getattr(tessera, "Tessera" + name) for name in classes):
    print(repr(cls.builder().model("org/model").revision("main")))
print(repr(TesseraDense({str(GOLDEN / "dense" / "tiny_bge_cls" / "model")!r})))
import os
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
try:
    TesseraDense("org/private-model")
except tessera.TesseraError as e:
    print(type(e).__name__, e)
"""
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert "Builder" in child.stdout and "ModelLoadError" in child.stdout
    assert SECRET not in child.stdout and SECRET not in child.stderr
    assert tessera.__name__ == "tessera"
