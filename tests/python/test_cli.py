"""The tessera command line: round trips, and one-line errors with no partial output."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN
from tessera._cli import main

import tessera

DENSE = GOLDEN / "dense" / "tiny_bge_cls" / "model"
COLBERT = GOLDEN / "multivector" / "tiny_colbert_stanford" / "model"
SPLADE = GOLDEN / "sparse" / "tiny_splade" / "model"
BOLT = GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model"
TEXTS = ["first line of text", "Second, with punctuation!", "", "a fourth one"]


@pytest.fixture()
def txt(tmp_path: Path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def test_encode_txt_to_npy_round_trip(tmp_path: Path, txt: Path) -> None:
    out = tmp_path / "out.npy"
    assert main(["encode", "--model", str(DENSE), "--input", str(txt), "--output", str(out)]) == 0
    non_blank = [t for t in TEXTS if t.strip()]
    np.testing.assert_array_equal(np.load(out), tessera.TesseraDense(DENSE).encode_batch(non_blank))
    kept = tmp_path / "kept.npy"
    args = ["encode", "--model", str(DENSE), "--input", str(txt), "--output", str(kept)]
    assert main([*args, "--keep-blank"]) == 0
    np.testing.assert_array_equal(np.load(kept), tessera.TesseraDense(DENSE).encode_batch(TEXTS))


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_files_honour_the_umask(tmp_path: Path, txt: Path, umask: int) -> None:
    out = tmp_path / f"out-{umask:o}.npy"
    previous = os.umask(umask)
    try:
        main(["encode", "--model", str(DENSE), "--input", str(txt), "--output", str(out)])
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_forecast_keeps_a_date_index_and_runs_the_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    real = tessera.TesseraTimeSeries

    class Counting:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.model = real(*args, **kwargs)  # type: ignore[arg-type]

        def __getattr__(self, name: str) -> object:
            if name.startswith("forecast"):
                calls.append(name)
            return getattr(self.model, name)

    monkeypatch.setattr(tessera, "TesseraTimeSeries", Counting)
    path = tmp_path / "daily.csv"
    values = 50 + 10 * np.sin(np.arange(40) / 3)
    lines = ["date,sales"] + [
        f"2024-01-{day + 1:02d},{v:.3f}" if day < 31 else f"2024-02-{day - 30:02d},{v:.3f}"
        for day, v in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n")
    assert main(["forecast", "--model", str(BOLT), "--input", str(path), "--horizon", "3"]) == 0
    assert calls == ["forecast_quantiles"]
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[0][:3] == ["series", "timestamp", "median"]
    assert [r[1] for r in rows[1:]] == ["2024-02-10", "2024-02-11", "2024-02-12"]
    want = real(BOLT).forecast(values, prediction_length=3)[0]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], want, rtol=1e-5)


def test_encode_jsonl_to_npz_for_ragged_models(tmp_path: Path) -> None:
    records = [json.dumps({"text": t, "id": i}) for i, t in enumerate(TEXTS)]  # input in tmp_path
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join(records))
    out = tmp_path / "colbert.npz"
    assert (
        main(["encode", "--model", str(COLBERT), "--input", str(path), "--output", str(out)]) == 0
    )
    saved = np.load(out)
    matrices = tessera.TesseraMultiVector(COLBERT).encode_batch(TEXTS)
    offsets = saved["offsets"]
    for i, m in enumerate(matrices):
        np.testing.assert_array_equal(saved["embeddings"][offsets[i] : offsets[i + 1]], m)
    out = tmp_path / "splade.npz"
    assert main(["encode", "--model", str(SPLADE), "--input", str(path), "--output", str(out)]) == 0
    saved = np.load(out)
    first = tessera.TesseraSparse(SPLADE).encode(TEXTS[0])
    np.testing.assert_array_equal(saved["indices"][: saved["offsets"][1]], first.indices)


def test_forecast_csv(tmp_path: Path) -> None:
    t = np.arange(60)
    a, b = 10 + np.sin(t / 3), 5 + np.cos(t / 4)
    lines = ["a,b"] + [
        f"{x:.6f},{'' if i < 20 else f'{y:.6f}'}" for i, (x, y) in enumerate(zip(a, b))
    ]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "forecast.csv"
    assert (
        main(
            [
                "forecast",
                "--model",
                str(BOLT),
                "--input",
                str(path),
                "--horizon",
                "5",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = out.read_text().splitlines()
    assert rows[0].startswith("series,step,median,q0.1") and len(rows) == 1 + 2 * 5
    model = tessera.TesseraTimeSeries(BOLT)
    median = model.forecast([a, b[20:]], prediction_length=5)
    got = np.array([float(r.split(",")[2]) for r in rows[1:]]).reshape(2, 5)
    np.testing.assert_allclose(got, median, rtol=1e-5)


def test_models_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--paradigm", "sparse"]) == 0
    out = capsys.readouterr().out
    assert "splade-v3" in out and "bge" not in out
    assert main(["models", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(tessera.list_models())
    assert main(["info", "colbert-v2"]) == 0
    assert "colbert-ir/colbertv2.0" in capsys.readouterr().out
    assert main(["info", str(DENSE)]) == 0
    assert "TesseraDense" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case",
    ["missing_input", "unknown_model", "missing_output_dir", "bad_format"],
)
def test_errors_are_one_line_and_leave_nothing(
    tmp_path: Path, txt: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.npy"
    args = {
        "missing_input": [
            "--model",
            str(DENSE),
            "--input",
            str(tmp_path / "none.txt"),
            "--output",
            str(out),
        ],
        "unknown_model": [
            "--model",
            "no-such-model-xyz",
            "--input",
            str(txt),
            "--output",
            str(out),
        ],
        "missing_output_dir": [
            "--model",
            str(DENSE),
            "--input",
            str(txt),
            "--output",
            str(tmp_path / "nope" / "o.npy"),
        ],
        "bad_format": [
            "--model",
            str(DENSE),
            "--input",
            str(txt),
            "--output",
            str(tmp_path / "o.csv"),
        ],
    }[case]
    assert main(["encode", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tessera: error:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]


def test_console_entry_points(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tessera", "models", "--paradigm", "timeseries"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "chronos-bolt-small" in done.stdout
    failed = subprocess.run(
        [sys.executable, "-m", "tessera", "info", "bge-smal"], capture_output=True, text=True
    )
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1


def test_precision_reports_what_check_precision_measures(
    txt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["precision", str(SPLADE), "--texts", str(txt), "--precision", "int8", "--json"]
    assert main(args) == 0
    (report,) = json.loads(capsys.readouterr().out)
    texts = [t for t in TEXTS if t.strip()]
    want = tessera.check_precision(tessera.TesseraSparse(SPLADE, quantize="int8"), texts)
    assert report == want.to_dict()
    assert report["precision"] == "int8" and report["term_agreement"] >= 0.9
    # Plain text, both precisions by default (bf16 reported as missing where it is).
    assert main(["precision", str(DENSE)]) == 0
    captured = capsys.readouterr()
    assert "int8 against f32, 40 texts" in captured.out
    assert "bf16 against f32" in captured.out or "bf16: not available" in captured.err
    assert main(["precision", str(BOLT)]) == 1
    assert "text models" in capsys.readouterr().err
