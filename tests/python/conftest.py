"""Shared fixtures: golden cases from tests/fixtures (reference outputs made with the
maintained PyTorch libraries) and the real models fetched from PyPI by scripts/test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "golden"
REAL = FIXTURES / "real"


@dataclass
class GoldenCase:
    dir: Path
    cases: dict[str, Any]

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def model_dir(self) -> Path:
        golden = self.dir / "model"
        if not (golden / "model_source.json").exists():
            return golden
        real = REAL / self.dir.relative_to(GOLDEN) / "model"
        if not (real / "model.safetensors").exists():
            pytest.fail(
                f"{real} is missing: run `python tests/fixtures/golden/fetch_real_models.py "
                "--dest tests/fixtures/real` (scripts/test does this)"
            )
        return real

    def texts(self, name: str) -> list[str]:
        return list(self.cases["inputs"][name])

    def check(self, check_id: str) -> dict[str, Any] | None:
        return next((c for c in self.cases["checks"] if c["id"] == check_id), None)

    def expected(self) -> Any:
        return np.load(self.dir / "expected.npz")

    def ragged(self, key: str) -> list[np.ndarray]:
        data = self.expected()
        values, offsets = data[f"{key}.data"], data[f"{key}.offsets"]
        return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def golden_cases(paradigm: str) -> list[GoldenCase]:
    root = GOLDEN / paradigm
    return [
        GoldenCase(d, json.loads((d / "cases.json").read_text()))
        for d in sorted(root.iterdir())
        if (d / "cases.json").exists()
    ]


def tolerance(check: dict[str, Any]) -> dict[str, float]:
    compare = check.get("compare", {})
    return {"atol": compare.get("atol", 1e-4), "rtol": compare.get("rtol", 1e-4)}


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    case = next(c for c in golden_cases("dense") if c.name == "minilm_real")
    return case.model_dir


@pytest.fixture(scope="session")
def tiny_dense_dir() -> Path:
    return GOLDEN / "dense" / "tiny_bge_cls" / "model"
