"""Streaming at flat memory: ``encode_stream`` over 1,000,000 texts with all-MiniLM-L6-v2.

The texts come from a generator (never a list), short sentences of 4-15 words from the
benchmark corpus's word list, each one different (a running number is part of it). The
script consumes the yielded batches (summing them, so nothing is kept) and samples the
process's resident memory and the throughput every ``--every`` texts.

Run with the bench environment (see ``benches/README.md``); a full run takes about 10
minutes on 2 cores::

    .venv-bench/bin/python benches/python/bench_stream.py [--texts 1000000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import common
import numpy as np

import tessera

MODEL = common.ROOT / "tests/fixtures/real/dense/minilm_real/model"


def texts(count: int) -> Iterator[str]:
    rng = common.Lcg(0x5EED)
    for i in range(count):
        words = [common.WORDS[rng.below(len(common.WORDS))] for _ in range(4 + rng.below(12))]
        yield f"{i} " + " ".join(words)


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--quick", action="store_true", help="100,000 texts")
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.texts = args.texts or (100_000 if args.quick else 1_000_000)

    model = tessera.TesseraDense(MODEL)
    samples = [{"texts": 0, "rss_mib": resident_mib(), "seconds": 0.0}]
    checksum = np.zeros(model.dimension(), dtype=np.float64)
    done = 0
    start = time.perf_counter()
    print("| texts | RSS (MiB) | texts/s since last |")
    print("|---|---|---|")
    for batch in model.encode_stream(texts(args.texts), batch_size=args.batch_size):
        checksum += batch.sum(axis=0)
        done += batch.shape[0]
        if done % args.every < args.batch_size or done == args.texts:
            now = time.perf_counter() - start
            previous = samples[-1]
            rate = (done - previous["texts"]) / max(now - previous["seconds"], 1e-9)
            samples.append({"texts": done, "rss_mib": resident_mib(), "seconds": now})
            print(f"| {done:,} | {samples[-1]['rss_mib']:.1f} | {rate:,.0f} |", flush=True)
    after_warmup = [s["rss_mib"] for s in samples[2:]] or [samples[-1]["rss_mib"]]
    print(
        f"\n{done:,} texts in {samples[-1]['seconds']:.0f} s; RSS after the first "
        f"{samples[1]['texts']:,} texts: {samples[1]['rss_mib']:.1f} MiB, at most "
        f"{max(after_warmup):.1f} MiB afterwards (checksum {checksum.sum():.3f})"
    )
    if args.json:
        args.json.write_text(json.dumps({"samples": samples}, indent=2))


if __name__ == "__main__":
    main()
