"""Shared helpers for the side-by-side Python benchmarks.

* :func:`sentences` — the fixed benchmark corpus, identical to ``benches/corpus/mod.rs``
  (same word list, same seeded LCG, same length mix), so the Python and Rust benches
  encode the same texts.
* :func:`interleaved` — times several callables in rounds (A, B, A, B, ... with the order
  rotated every round) so that load from other processes hits every side alike.
* :class:`Result` / :func:`print_table` / :func:`write_json` — medians, spread, ratios.

The machine these run on may be shared (other builds running), so every number reported is
the median of several interleaved repeats, with the min-max spread printed beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (``benches/python/common.py`` -> ``.``)."""

# --------------------------------------------------------------------------------------
# Corpus (mirror of benches/corpus/mod.rs — keep the two in step)
# --------------------------------------------------------------------------------------

WORDS: tuple[str, ...] = tuple(
    """
    the of and to in a is that for it as was with be by on not he this are or his from
    at which but have an had they you were their one all we can her has there been if
    more when will would who so no model embedding vector search retrieval query
    document neural network language sentence token attention layer training river
    mountain city market history science music garden weather ocean computer library
    science protein economy election football recipe travel quickly slowly beautiful
    ancient modern important different several between through because however although
    during without against children government university research information
    development community environment technology Paris London Tokyo Berlin 2024 42
    e-mail state-of-the-art COVID-19 naïve
    """.split()
)

_MASK64 = (1 << 64) - 1
_SEED = 0x5EED_7E55_E7A0


class Lcg:
    """Knuth's MMIX linear congruential generator, exactly as ``benches/corpus/mod.rs``."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK64

    def next(self) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return self.state >> 33

    def below(self, n: int) -> int:
        return self.next() % n


def _sentence_words(rng: Lcg) -> int:
    bucket = rng.below(16)
    if bucket <= 7:
        return 4 + rng.below(12)
    if bucket <= 13:
        return 16 + rng.below(48)
    if bucket == 14:
        return 64 + rng.below(96)
    return 160 + rng.below(120)


def sentences(count: int) -> list[str]:
    """``count`` sentences of mixed length; the same list as the Rust ``corpus::sentences``."""
    rng = Lcg(_SEED)
    out: list[str] = []
    for _ in range(count):
        words = _sentence_words(rng)
        parts: list[str] = []
        for w in range(words):
            if w > 0:
                parts.append(", " if rng.below(12) == 0 else " ")
            parts.append(WORDS[rng.below(len(WORDS))])
        parts.append(".")
        out.append("".join(parts))
    return out


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """Pins every thread pool we can reach to ``threads``.

    Environment variables must be set before the libraries start their pools (before
    ``import torch`` / the first Tessera call), so call this first thing in ``main``.
    """
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - the reference stack is optional for helpers
        pass


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every JSON result."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS"),
    }
    for module in (
        "tessera",
        "torch",
        "transformers",
        "sentence_transformers",
        "chronos",
        "pylate",
        "numpy",
    ):
        try:
            mod = __import__(module)
            info[module] = getattr(mod, "__version__", "?")
        except Exception:  # any import failure just means "not installed here"
            info[module] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes: ``--quick``, ``--json``, ``--repeats``, ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (fewer inputs/repeats)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write results")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per case (default 5, or 3 with --quick)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="threads for torch and Tessera (default 2)"
    )
    return parser


def repeats_for(args: argparse.Namespace) -> int:
    repeats: int | None = args.repeats
    if repeats is not None:
        return max(1, repeats)
    return 3 if args.quick else 5


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def interleaved(
    cases: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    *,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Times each callable ``repeats`` times, interleaved round by round.

    Every round runs each case once; the order rotates each round (A B C, B C A, ...), so
    neither side always runs right after the other. ``warmup`` untimed rounds come first.
    Returns the wall-clock seconds of every timed call, per case.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            gc.collect()
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
        if verbose:
            line = "  ".join(f"{n}={times[n][-1]:.3f}s" for n in names)
            print(f"    round {r + 1}/{repeats}: {line}", file=sys.stderr, flush=True)
    return times


@dataclass
class Measurement:
    """One side of one case: ``items`` processed per call, seconds of every repeat."""

    side: str
    items: int
    seconds: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def throughput(self) -> float:
        """Items per second at the median time."""
        return self.items / self.median_s

    @property
    def throughput_range(self) -> tuple[float, float]:
        """(slowest, fastest) items per second over the repeats."""
        return self.items / max(self.seconds), self.items / min(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.throughput_range
        return {
            **asdict(self),
            "median_s": self.median_s,
            "throughput": self.throughput,
            "throughput_min": low,
            "throughput_max": high,
        }


@dataclass
class Result:
    """One benchmark case: Tessera against one reference on the same inputs."""

    case: str
    unit: str
    tessera: Measurement
    reference: Measurement
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Tessera throughput over reference throughput (> 1: Tessera is faster)."""
        return self.tessera.throughput / self.reference.throughput

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "unit": self.unit,
            "tessera": self.tessera.to_dict(),
            "reference": self.reference.to_dict(),
            "ratio": self.ratio,
            "notes": self.notes,
        }


def measure(
    case: str,
    unit: str,
    items: int,
    tessera: Callable[[], object],
    reference: Callable[[], object],
    reference_name: str,
    repeats: int,
    warmup: int = 1,
    notes: dict[str, Any] | None = None,
) -> Result:
    """Times ``tessera`` and ``reference`` (each processing ``items`` items) interleaved."""
    print(f"==> {case} ({items} {unit} per call, {repeats} rounds)", file=sys.stderr, flush=True)
    times = interleaved({"tessera": tessera, reference_name: reference}, repeats, warmup)
    return Result(
        case=case,
        unit=unit,
        tessera=Measurement("tessera", items, times["tessera"]),
        reference=Measurement(reference_name, items, times[reference_name]),
        notes=notes or {},
    )


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def _fmt_rate(m: Measurement) -> str:
    low, high = m.throughput_range
    return f"{m.throughput:,.1f} ({low:,.1f}-{high:,.1f})"


def print_table(title: str, results: Sequence[Result]) -> None:
    """A small fixed-width table: throughput (median, min-max) per side and the ratio."""
    headers = ["case", "unit", "tessera /s", "reference", "reference /s", "tessera/ref"]
    rows = [
        [
            r.case,
            r.unit,
            _fmt_rate(r.tessera),
            r.reference.side,
            _fmt_rate(r.reference),
            f"{r.ratio:.2f}x",
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print()
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("(throughput: median over interleaved repeats, min-max in parentheses)")


def write_json(
    path: Path | None,
    benchmark: str,
    results: Sequence[Result],
    args: argparse.Namespace,
    extra: dict[str, Any] | None = None,
) -> None:
    """Writes ``results`` (and the environment) to ``path`` when one was given."""
    if path is None:
        return
    payload: dict[str, Any] = {
        "benchmark": benchmark,
        "quick": bool(args.quick),
        "repeats": repeats_for(args),
        "threads": args.threads,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(),
        "results": [r.to_dict() for r in results],
    }
    if extra:
        payload.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
