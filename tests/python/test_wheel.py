"""The wheels scripts/wheel builds: one stable-ABI wheel for CPython 3.9+ per platform
(Linux x86_64 and aarch64), manylinux2014, stripped; the x86_64 one installs into a fresh
virtual environment and runs (the aarch64 one is checked as a file: this machine cannot
run it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import GOLDEN

ROOT = Path(__file__).resolve().parents[2]


ARCHES = {"x86_64": 62, "aarch64": 183}  # ELF e_machine


def built_wheel(arch: str) -> Path:
    wheels = sorted((ROOT / "dist").glob(f"tessera_embeddings-*-cp39-abi3-*{arch}*.whl"))
    assert wheels, f"no {arch} wheel in dist/: run scripts/wheel (scripts/test does)"
    return wheels[-1]


@pytest.fixture(scope="module")
def wheel() -> Path:
    return built_wheel("x86_64")


@pytest.mark.parametrize("arch", list(ARCHES))
def test_one_abi3_wheel_per_platform_for_manylinux2014(arch: str) -> None:
    wheel = built_wheel(arch)
    assert f"manylinux_2_17_{arch}" in wheel.name or f"manylinux2014_{arch}" in wheel.name
    auditwheel = shutil.which("auditwheel") or str(Path(sys.executable).parent / "auditwheel")
    shown = subprocess.run([auditwheel, "show", str(wheel)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert f"manylinux_2_17_{arch}" in shown.stdout.replace("\n", " ")


@pytest.mark.parametrize("arch", list(ARCHES))
def test_the_extension_is_stripped_and_for_its_platform(arch: str) -> None:
    with zipfile.ZipFile(built_wheel(arch)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".so")]
        data = archive.read(name)
        names = archive.namelist()
    assert int.from_bytes(data[0x12:0x14], "little") == ARCHES[arch]
    sections = elf_section_names(data)
    assert ".text" in sections
    assert ".symtab" not in sections and not any(n.startswith(".debug") for n in sections)
    assert name.endswith(".abi3.so")
    assert any(n.endswith("tessera/py.typed") for n in names)
    assert any(n.endswith("tessera/__init__.pyi") for n in names)
    assert any(n.endswith("/licenses/LICENSE") or n.endswith("LICENSE") for n in names)


def elf_section_names(data: bytes) -> set[str]:
    """Section names of a 64-bit little-endian ELF file, from its section header table."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    shoff = int.from_bytes(data[0x28:0x30], "little")
    entry, count, names_index = (
        int.from_bytes(data[0x3A + 2 * i : 0x3C + 2 * i], "little") for i in range(3)
    )

    def header(i: int) -> tuple[int, int]:
        at = shoff + i * entry
        name = int.from_bytes(data[at : at + 4], "little")
        offset = int.from_bytes(data[at + 0x18 : at + 0x20], "little")
        return name, offset

    table = header(names_index)[1]
    names = set()
    for i in range(count):
        start = table + header(i)[0]
        names.add(data[start : data.index(b"\0", start)].decode())
    return names


def test_the_wheel_installs_into_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    model = GOLDEN / "dense" / "tiny_bge_cls" / "model"
    run = subprocess.run(
        [
            str(python),
            "-c",
            f"import tessera; print(tessera.__file__); "
            f"print(tessera.TesseraDense({str(model)!r}).encode('a wheel').shape)",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    location, shape = run.stdout.split()
    assert str(venv) in location and shape == "(32,)"
