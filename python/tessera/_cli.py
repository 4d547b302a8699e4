"""The ``tessera`` command line: list models, inspect one, encode files, forecast CSVs.

Errors print one line on stderr and exit non-zero; an output file is written whole or
not at all.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import tessera


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (tessera.TesseraError, OSError, ValueError, TypeError, ImportError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"tessera: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tessera: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera", description="Local embedding and forecasting models."
    )
    parser.add_argument("--version", action="version", version=f"tessera {tessera.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list the model registry")
    models.add_argument(
        "--paradigm", choices=["dense", "multivector", "sparse", "vision", "timeseries"]
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(run=run_models)

    info = sub.add_parser("info", help="describe a model (registry id, repo id or directory)")
    info.add_argument("model")
    info.set_defaults(run=run_info)

    encode = sub.add_parser("encode", help="embed the texts of a .txt or .jsonl file")
    encode.add_argument("--model", required=True)
    encode.add_argument(
        "--input", required=True, type=Path, help=".txt (one text per line) or .jsonl"
    )
    encode.add_argument("--output", required=True, type=Path, help=".npy, .npz or .parquet")
    encode.add_argument(
        "--field", default="text", help="JSONL field holding the text (default: text)"
    )
    encode.add_argument("--batch-size", type=int, default=None)
    encode.add_argument(
        "--query", action="store_true", help="encode as queries (prefix / query side)"
    )
    encode.add_argument(
        "--keep-blank",
        action="store_true",
        help="embed blank lines of a .txt input too (by default they are skipped)",
    )
    encode.add_argument("--device", default=None)
    encode.set_defaults(run=run_encode)

    forecast = sub.add_parser("forecast", help="forecast every column of a CSV file")
    forecast.add_argument("--model", required=True)
    forecast.add_argument("--input", required=True, type=Path, help="CSV, one series per column")
    forecast.add_argument("--horizon", type=int, default=None, help="steps to forecast")
    forecast.add_argument(
        "--output", type=Path, default=None, help="CSV to write (default: stdout)"
    )
    forecast.add_argument("--device", default=None)
    forecast.set_defaults(run=run_forecast)

    precision = sub.add_parser(
        "precision", help="what bf16 / int8 cost a text model: cosine and ranking against f32"
    )
    precision.add_argument("model")
    precision.add_argument(
        "--texts",
        type=Path,
        default=None,
        help=".txt (one text per line) or .jsonl (default: a built-in sample of 40 sentences)",
    )
    precision.add_argument(
        "--field", default="text", help="JSONL field holding the text (default: text)"
    )
    precision.add_argument(
        "--precision",
        action="append",
        choices=["int8", "bf16"],
        help="check only this precision (repeatable; default: int8, and bf16 where the CPU "
        "has AVX512_BF16)",
    )
    precision.add_argument("--top-k", type=int, default=10)
    precision.add_argument("--json", action="store_true", help="print JSON instead of text")
    precision.set_defaults(run=run_precision)
    return parser


def run_precision(args: argparse.Namespace) -> int:
    texts = None if args.texts is None else read_texts(args.texts, args.field)
    wanted = args.precision or ["int8", "bf16"]
    reports = []
    for name in wanted:
        quantize, dtype = ("int8", None) if name == "int8" else (None, "bf16")
        try:
            report = tessera.check_precision(
                args.model, texts, dtype=dtype, quantize=quantize, top_k=args.top_k
            )
        except tessera.DeviceError as error:
            # Without AVX512_BF16, bf16 is reported as unavailable unless asked for alone.
            if args.precision:
                raise
            print(f"{name}: not available here ({str(error).splitlines()[0]})", file=sys.stderr)
            continue
        reports.append(report)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print("\n".join(str(r) for r in reports))
    return 0


def run_models(args: argparse.Namespace) -> int:
    models = tessera.list_models(args.paradigm)
    if args.json:
        print(json.dumps(models, indent=2, ensure_ascii=False))
        return 0
    rows = [
        (
            m["id"],
            m["paradigm"],
            str(m.get("dimension") or ""),
            m["parameters"],
            "yes" if m["supported"] else "not yet",
            m["huggingface_id"],
        )
        for m in models
    ]
    header = ("id", "paradigm", "dim", "params", "runs", "huggingface id")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def run_info(args: argparse.Namespace) -> int:
    entry = next(
        (
            m
            for m in tessera.list_models()
            if args.model.lower() in (m["id"].lower(), m["huggingface_id"].lower())
        ),
        None,
    )
    if entry is not None:
        for key, value in entry.items():
            if value not in (None, [], ""):
                print(f"{key}: {value}")
        return 0
    model = tessera.Tessera(args.model)
    print(repr(model))
    return 0


def read_texts(path: Path, field: str, keep_blank: bool = False) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8") as handle:
        if suffix == ".jsonl":
            texts = []
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                text = (
                    record
                    if isinstance(record, str)
                    else record.get(field)
                    if isinstance(record, dict)
                    else None
                )
                if not isinstance(text, str):
                    raise ValueError(f"{path}:{number}: no string field '{field}'")
                texts.append(text)
            return texts
        if suffix == ".txt":
            lines = [line.rstrip("\r\n") for line in handle]
            return lines if keep_blank else [line for line in lines if line.strip()]
    raise ValueError(f"unsupported input format '{suffix}': use .txt or .jsonl")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path in the output's folder, renamed onto `path` only on success."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=folder)
    os.close(fd)
    # mkstemp makes the file private (0600); the output gets the mode of any new file.
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_encode(args: argparse.Namespace) -> int:
    suffix = args.output.suffix.lower()
    if suffix not in (".npy", ".npz", ".parquet"):
        raise ValueError(f"unsupported output format '{suffix}': use .npy, .npz or .parquet")
    if not (args.output.parent if str(args.output.parent) else Path(".")).is_dir():
        raise FileNotFoundError(f"output directory does not exist: {args.output.parent}")
    texts = read_texts(args.input, args.field, args.keep_blank)
    options: dict[str, Any] = {} if args.device is None else {"device": args.device}
    model = tessera.Tessera(args.model, **options)
    arrays = encode_texts(model, texts, args.batch_size, args.query)
    with atomic_output(args.output) as tmp:
        write_arrays(tmp, suffix, texts, arrays)
    print(f"wrote {len(texts)} embeddings to {args.output}", file=sys.stderr)
    return 0


def encode_texts(
    model: Any, texts: list[str], batch_size: int | None, query: bool
) -> dict[str, np.ndarray]:
    if isinstance(model, tessera.TesseraDense):
        encode = model.encode_query if query else model.encode_batch
        return {"embeddings": np.asarray(encode(texts, batch_size=batch_size, show_progress=True))}
    if isinstance(model, tessera.TesseraMultiVector):
        matrices = model.encode_batch(
            texts, is_query=query, batch_size=batch_size, show_progress=True
        )
        offsets = np.cumsum([0] + [len(m) for m in matrices]).astype(np.int64)
        data = (
            np.concatenate(matrices) if matrices else np.zeros((0, model.dimension()), np.float32)
        )
        return {"embeddings": data, "offsets": offsets}
    if isinstance(model, tessera.TesseraSparse):
        vectors = model.encode_batch(texts, batch_size=batch_size, show_progress=True)
        offsets = np.cumsum([0] + [len(v) for v in vectors]).astype(np.int64)
        return {
            "indices": np.concatenate([v.indices for v in vectors])
            if vectors
            else np.zeros(0, np.int32),
            "values": np.concatenate([v.values for v in vectors])
            if vectors
            else np.zeros(0, np.float32),
            "offsets": offsets,
            "vocab_size": np.array(model.vocab_size(), dtype=np.int64),
        }
    raise ValueError(f"{model.model()} is not a text embedding model")


def write_arrays(path: Path, suffix: str, texts: list[str], arrays: dict[str, np.ndarray]) -> None:
    if suffix == ".npz":
        np.savez(path, **arrays)
    elif suffix == ".npy":
        if set(arrays) != {"embeddings"}:
            raise ValueError(
                "this model's output is ragged: write .npz (data + offsets) instead of .npy"
            )
        with path.open("wb") as handle:
            np.save(handle, arrays["embeddings"])
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as error:
            raise ImportError("writing .parquet needs pyarrow: pip install pyarrow") from error
        if set(arrays) != {"embeddings"}:
            raise ValueError("parquet output is for dense models; write .npz for ragged outputs")
        table = pa.table({"text": texts, "embedding": list(arrays["embeddings"])})
        pq.write_table(table, path)


def read_series(path: Path) -> tuple[list[str], list[np.ndarray], list[str] | None]:
    """Series by column; a first column that is not numeric (dates, times) is the index."""
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and at least one value row")
    names, values = rows[0], rows[1:]
    index: list[str] | None = None
    if names and any(row and row[0].strip() and not _is_number(row[0]) for row in values):
        index = [row[0].strip() if row else "" for row in values]
        names, values = names[1:], [row[1:] for row in values]
    if not names:
        raise ValueError(f"{path}: no series column besides the index")
    columns: list[list[float]] = [[] for _ in names]
    for number, row in enumerate(values, start=2):
        for column, cell in enumerate(row[: len(names)]):
            cell = cell.strip()
            try:
                columns[column].append(float(cell) if cell else math.nan)
            except ValueError:
                raise ValueError(f"{path}:{number}: '{cell}' is not a number") from None
    series = [np.array(c, dtype=np.float64) for c in columns]
    # leading empty cells of shorter series are padding, not observations
    trimmed = [s[np.argmax(~np.isnan(s)) :] if (~np.isnan(s)).any() else s for s in series]
    return names, trimmed, index


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def future_index(index: list[str] | None, steps: int) -> list[str]:
    """Labels of the forecast steps: the index continued at its regular spacing when it
    is made of ISO dates / times, else the step numbers 1, 2, ..."""
    numbers = [str(step + 1) for step in range(steps)]
    if not index or len(index) < 2:
        return numbers
    try:
        stamps = [datetime.fromisoformat(cell) for cell in index]
    except ValueError:
        return numbers
    spacing = {b - a for a, b in zip(stamps, stamps[1:])}
    if len(spacing) != 1:
        return numbers
    (delta,) = spacing
    dates_only = all(len(cell) == 10 for cell in index)
    future = [stamps[-1] + delta * (step + 1) for step in range(steps)]
    return [f.date().isoformat() if dates_only else f.isoformat() for f in future]


def run_forecast(args: argparse.Namespace) -> int:
    names, series, index = read_series(args.input)
    options: dict[str, Any] = {} if args.device is None else {"device": args.device}
    model = tessera.TesseraTimeSeries(args.model, **options)
    levels = list(model.quantiles())
    # One model run: the median is the 0.5 level, added to the model's own when missing.
    wanted = levels if 0.5 in levels else sorted([*levels, 0.5])
    quantiles = model.forecast_quantiles(
        series, prediction_length=args.horizon, quantile_levels=wanted
    )
    median = quantiles[..., wanted.index(0.5)]
    shown = [wanted.index(level) for level in levels]
    labels = future_index(index, median.shape[1])
    header = [
        "series",
        "timestamp" if labels[0] != "1" else "step",
        "median",
        *[f"q{level:g}" for level in levels],
    ]
    rows = [
        [name, labels[step], f"{median[i, step]:.6g}"]
        + [f"{quantiles[i, step, q]:.6g}" for q in shown]
        for i, name in enumerate(names)
        for step in range(median.shape[1])
    ]
    if args.output is None:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
        return 0
    with atomic_output(args.output) as tmp:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    print(f"wrote {len(names)} forecasts to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
