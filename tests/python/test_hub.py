"""Model resolution through the Hugging Face cache and hub protocol: a pre-filled cache,
a download from a local server in the hub's URL layout, offline mode, revisions and tokens."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN
from hub_server import HubServer

import tessera
from tessera import Tessera, TesseraDense

BGE = GOLDEN / "dense" / "tiny_bge_cls" / "model"
MEAN = GOLDEN / "dense" / "tiny_mean_nonorm" / "model"
COMMIT_MAIN = "a" * 40
COMMIT_V2 = "b" * 40
TEXTS = ["hub protocol test", "a second sentence"]


@pytest.fixture()
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = tmp_path / "hub-cache"
    for var in ("HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    yield cache


def fill_cache(cache: Path, repo: str, commit: str, source: Path, ref: str = "main") -> None:
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    shutil.copytree(source, snapshot)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / ref).write_text(commit)


def reference(directory: Path) -> np.ndarray:
    return TesseraDense(directory).encode_batch(TEXTS)


def test_prefilled_cache_offline(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_cache(hub_env, "tiny/bge", COMMIT_MAIN, BGE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = TesseraDense("tiny/bge")
    assert model.model() == "tiny/bge"
    np.testing.assert_array_equal(model.encode_batch(TEXTS), reference(BGE))


def test_registry_id_resolves_to_its_repo_in_the_cache(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, minilm_dir: Path
) -> None:
    fill_cache(hub_env, "sentence-transformers/all-MiniLM-L6-v2", COMMIT_MAIN, minilm_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    by_id = Tessera("all-minilm-l6-v2")
    by_repo = Tessera("sentence-transformers/all-MiniLM-L6-v2")
    assert isinstance(by_id, TesseraDense) and by_id.dimension() == 384
    np.testing.assert_array_equal(by_id.encode_batch(TEXTS), by_repo.encode_batch(TEXTS))


def test_hf_home_locates_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fill_cache(tmp_path / "home" / "hub", "tiny/bge", COMMIT_MAIN, BGE)
    np.testing.assert_array_equal(TesseraDense("tiny/bge").encode_batch(TEXTS), reference(BGE))


def test_offline_without_cache_says_not_cached(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(tessera.ModelLoadError, match="not in the Hugging Face cache"):
        TesseraDense("tiny/never-downloaded")


def test_download_then_offline_after_the_server_stops(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repos = {("tiny/bge", "main"): (COMMIT_MAIN, BGE)}
    with HubServer(repos) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
        downloaded = TesseraDense("tiny/bge")
        np.testing.assert_array_equal(downloaded.encode_batch(TEXTS), reference(BGE))
        fetched = {path for _, path, _ in server.requests}
        assert "/tiny/bge/resolve/main/model.safetensors" in fetched
        assert all(auth == "Bearer hf_secret_token" for _, _, auth in server.requests)
    snapshot = hub_env / "models--tiny--bge" / "snapshots" / COMMIT_MAIN
    assert (snapshot / "model.safetensors").exists()
    assert (snapshot / "1_Pooling" / "config.json").exists()
    # the server is gone: offline mode serves the cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    np.testing.assert_array_equal(TesseraDense("tiny/bge").encode_batch(TEXTS), reference(BGE))
    # and without offline mode, files known to be absent are not asked for again
    monkeypatch.delenv("HF_HUB_OFFLINE")
    np.testing.assert_array_equal(TesseraDense("tiny/bge").encode_batch(TEXTS), reference(BGE))


def test_pinned_revision(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repos = {
        ("tiny/model", "main"): (COMMIT_MAIN, BGE),
        ("tiny/model", "v2"): (COMMIT_V2, MEAN),
    }
    with HubServer(repos) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        main = TesseraDense("tiny/model")
        pinned = TesseraDense("tiny/model", revision="v2")
        built = TesseraDense.builder().model("tiny/model").revision("v2").build()
    np.testing.assert_array_equal(main.encode_batch(TEXTS), reference(BGE))
    np.testing.assert_array_equal(pinned.encode_batch(TEXTS), reference(MEAN))
    np.testing.assert_array_equal(built.encode_batch(TEXTS), reference(MEAN))


def test_unreachable_hub_is_a_load_error(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(tessera.ModelLoadError, match="cannot be reached"):
        TesseraDense("tiny/unreachable")


def test_missing_repo_on_the_server(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with HubServer({}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        with pytest.raises(tessera.ModelLoadError, match=r"config\.json"):
            TesseraDense("tiny/absent")
