"""Dense encoding throughput: Tessera against sentence-transformers on all-MiniLM-L6-v2.

Both encode the same fixed corpus (``common.sentences``, identical to the Rust criterion
bench ``benches/dense.rs``) in one process, interleaved, at batch 32 (``--batch-sizes`` for
more). Also reports the cost of the Python layer:

* against Rust: the criterion bench's median (``target/criterion/dense/minilm_l6_batch32``,
  written by ``cargo bench --bench dense``; ``--cargo`` runs it first) over the same 2,048
  sentences at batch 32;
* with a tiny model (``tests/fixtures/golden/dense/tiny_mean_nonorm``), where the network
  costs almost nothing, so sentences/s there bound what tokenization, batching and the
  NumPy hand-off cost per sentence.

Run with the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_dense.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import common
import numpy as np

MODEL = common.ROOT / "tests/fixtures/real/dense/minilm_real/model"
TINY_MODEL = common.ROOT / "tests/fixtures/golden/dense/tiny_mean_nonorm/model"
CRITERION = common.ROOT / "target/criterion/dense/minilm_l6_batch32/new/estimates.json"
RUST_SENTENCES = 2048  # benches/dense.rs: SENTENCES
RUST_BATCH = 32  # benches/dense.rs: BATCH


def rust_reference(run_cargo: bool) -> dict[str, Any] | None:
    """The Rust criterion result for the same corpus, if one has been recorded."""
    if run_cargo:
        print("==> cargo bench --bench dense", file=sys.stderr, flush=True)
        subprocess.run(
            ["cargo", "bench", "--bench", "dense", "--", "--noplot"],
            cwd=common.ROOT,
            check=True,
        )
    if not CRITERION.exists():
        return None
    estimates = json.loads(CRITERION.read_text(encoding="utf-8"))
    median_ns = float(estimates["median"]["point_estimate"])
    low_ns = float(estimates["median"]["confidence_interval"]["lower_bound"])
    high_ns = float(estimates["median"]["confidence_interval"]["upper_bound"])
    return {
        "source": str(CRITERION.relative_to(common.ROOT)),
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(CRITERION.stat().st_mtime)),
        "median_s": median_ns * 1e-9,
        "sentences_per_s": RUST_SENTENCES / (median_ns * 1e-9),
        "sentences_per_s_ci": [RUST_SENTENCES / (high_ns * 1e-9), RUST_SENTENCES / (low_ns * 1e-9)],
    }


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How closely the two sides' embeddings agree (a sanity check, not a benchmark)."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    cos = np.sum(a64 * b64, axis=1) / (
        np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1) + 1e-30
    )
    return {"max_abs_diff": float(np.max(np.abs(a64 - b64))), "min_cosine": float(np.min(cos))}


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=None, help="corpus size (default 2048)")
    parser.add_argument(
        "--batch-sizes", default="32", help="comma-separated batch sizes (default 32; try 8,32,128)"
    )
    parser.add_argument(
        "--cargo", action="store_true", help="run `cargo bench --bench dense` first (slow)"
    )
    args = parser.parse_args()
    common.set_threads(args.threads)

    import torch
    from sentence_transformers import SentenceTransformer

    import tessera

    torch.set_num_threads(args.threads)
    repeats = common.repeats_for(args)
    count = args.sentences or (512 if args.quick else RUST_SENTENCES)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    texts = common.sentences(count)

    tess = tessera.TesseraDense(str(MODEL), device="cpu")
    st = SentenceTransformer(str(MODEL), device="cpu")
    st.eval()

    check = agreement(
        tess.encode_batch(texts[:64], batch_size=32),
        st.encode(texts[:64], batch_size=32, convert_to_numpy=True),
    )
    print(f"agreement on 64 sentences: {check}", file=sys.stderr)

    results: list[common.Result] = []
    for batch in batch_sizes:

        def run_tessera(batch: int = batch) -> object:
            return tess.encode_batch(texts, batch_size=batch)

        def run_st(batch: int = batch) -> object:
            with torch.inference_mode():
                return st.encode(texts, batch_size=batch, convert_to_numpy=True)

        results.append(
            common.measure(
                f"minilm-l6 batch {batch}",
                "sentences",
                count,
                run_tessera,
                run_st,
                "sentence-transformers",
                repeats,
                notes={"agreement": check},
            )
        )

    # Python-layer cost, 1: a tiny model, where the network is nearly free.
    tiny = tessera.TesseraDense(str(TINY_MODEL), device="cpu")
    tiny_st = SentenceTransformer(str(TINY_MODEL), device="cpu")

    def run_tiny() -> object:
        return tiny.encode_batch(texts, batch_size=32)

    def run_tiny_st() -> object:
        with torch.inference_mode():
            return tiny_st.encode(texts, batch_size=32, convert_to_numpy=True)

    results.append(
        common.measure(
            "tiny model batch 32 (overhead)",
            "sentences",
            count,
            run_tiny,
            run_tiny_st,
            "sentence-transformers",
            repeats,
        )
    )

    common.print_table("Dense encoding (sentences/s)", results)

    # Python-layer cost, 2: the Rust criterion bench on the same corpus and batch.
    rust = rust_reference(args.cargo)
    overhead: dict[str, Any] = {"rust_criterion": rust}
    same_setup = count == RUST_SENTENCES and RUST_BATCH in batch_sizes
    if rust is None:
        print(
            "\nRust criterion result not found "
            f"({CRITERION.relative_to(common.ROOT)}); run `cargo bench --bench dense` "
            "or pass --cargo to compare the Python layer with Rust."
        )
    else:
        print(
            f"\nRust criterion (benches/dense.rs, {RUST_SENTENCES} sentences, batch {RUST_BATCH},"
            f" recorded {rust['recorded']}): {rust['sentences_per_s']:,.1f} sentences/s"
        )
        py = next((r for r in results if r.case == f"minilm-l6 batch {RUST_BATCH}"), None)
        if py is not None:
            ratio = py.tessera.throughput / rust["sentences_per_s"]
            overhead["python_over_rust_throughput"] = ratio
            overhead["python_overhead_s_per_call"] = py.tessera.median_s - rust["median_s"] * (
                count / RUST_SENTENCES
            )
            note = "" if same_setup else "; corpus size differs, compared per sentence"
            verdict = (
                f"Python layer costs {(1 - ratio) * 100:.1f}%"
                if ratio < 1
                else "no Python-layer cost measurable"
            )
            print(
                f"Python tessera / Rust tessera throughput: {ratio:.3f} ({verdict}{note}; "
                "the criterion run was taken at another time, under other load: compare "
                "like for like with --cargo on a quiet machine)"
            )
    tiny_result = results[-1]
    per_sentence_us = tiny_result.tessera.median_s / count * 1e6
    overhead["tiny_model_us_per_sentence"] = per_sentence_us
    print(
        f"Tiny model through Python: {per_sentence_us:.1f} us per sentence "
        "(tokenize + 2-layer net + NumPy hand-off): an upper bound on the per-sentence "
        "fixed cost."
    )

    common.write_json(
        args.json,
        "dense",
        results,
        args,
        extra={"overhead": overhead, "sentences": count, "batch_sizes": batch_sizes},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
