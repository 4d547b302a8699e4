"""ColPali page throughput: Tessera against transformers' ColPaliForRetrieval on PyTorch CPU.

The model is a small random ColPali in the vidore/colpali-v1.3-hf layout (SigLIP 224 px /
patch 14 = 256 image tokens, hidden 256 x 4 layers; Gemma hidden 256 x 4 layers; 128-d
projection), built with transformers' own ``ColPaliForRetrieval`` from the golden tiny
model's config and tokenizer, and saved with safetensors into
``.cache/bench-models/colpali_small_random`` on first use. Pages are seeded random RGB
images of 400 x 300 pixels; both sides decode nothing (arrays / PIL images in memory),
resize, normalise and embed them at batch 4.

Run with the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_vision.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import common
import numpy as np

GOLDEN = common.ROOT / "tests/fixtures/golden/vision/colpali_tiny_img84_p14/model"
CACHE = common.ROOT / ".cache/bench-models"
IMAGE_SIZE = 224
PATCH = 14
BATCH = 4


def build_random_colpali(out: Path, seed: int = 0) -> Path:
    """Writes a small random ColPali checkpoint (real layout) plus processor files to ``out``."""
    if (out / "model.safetensors").exists() and (out / "bench_model.json").exists():
        return out
    import torch
    from transformers import ColPaliConfig, ColPaliForRetrieval

    print(f"==> generating {out}", file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = json.loads((GOLDEN / "config.json").read_text())
    raw.pop("transformers_version", None)
    tokens = (IMAGE_SIZE // PATCH) ** 2
    text = {
        "head_dim": 64,
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_attention_heads": 4,
        "num_hidden_layers": 4,
        "num_image_tokens": tokens,
        "num_key_value_heads": 1,
    }
    raw["embedding_dim"] = 128
    raw["text_config"].update(text)
    vlm = raw["vlm_config"]
    vlm["text_config"].update(text)
    vlm.update(hidden_size=256, projection_dim=256)
    vlm["vision_config"].update(
        hidden_size=256,
        image_size=IMAGE_SIZE,
        intermediate_size=1024,
        num_attention_heads=4,
        num_hidden_layers=4,
        num_image_tokens=tokens,
        projection_dim=256,
    )
    torch.manual_seed(seed)
    model = ColPaliForRetrieval(ColPaliConfig.from_dict(raw)).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        shutil.copy(GOLDEN / name, out / name)
    pre: dict[str, Any] = json.loads((GOLDEN / "preprocessor_config.json").read_text())
    pre.update(image_seq_length=tokens, size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    (out / "bench_model.json").write_text(json.dumps({"seed": seed}))
    return out


def pages(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8) for _ in range(n)]


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    common.set_threads(args.threads)

    import torch
    from PIL import Image
    from transformers import ColPaliForRetrieval, ColPaliProcessor

    import tessera

    torch.set_num_threads(args.threads)
    repeats = common.repeats_for(args)
    path = build_random_colpali(CACHE / "colpali_small_random")

    tess = tessera.TesseraVision(str(path), device="cpu", batch_size=BATCH)
    reference = ColPaliForRetrieval.from_pretrained(str(path), dtype=torch.float32).eval()
    processor = ColPaliProcessor.from_pretrained(str(path))

    count = BATCH * (1 if args.quick else 2)
    arrays = pages(count)
    images = [Image.fromarray(a) for a in arrays]

    def tess_pages() -> object:
        return tess.encode_documents(arrays, batch_size=BATCH)

    def ref_pages() -> object:
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), BATCH):
                batch = processor.process_images(images=images[start : start + BATCH])
                out.append(reference(**batch).embeddings.numpy())
        return out

    ours = tess.encode_documents(arrays[:1])[0].embeddings
    with torch.inference_mode():
        theirs = reference(**processor.process_images(images=images[:1])).embeddings[0].numpy()
    check: dict[str, Any] = {
        "shape_tessera": list(ours.shape),
        "shape_reference": list(theirs.shape),
    }
    if ours.shape == theirs.shape:
        check["max_abs_diff"] = float(np.max(np.abs(ours - theirs)))
    print(f"agreement on one page: {check}", file=sys.stderr)

    result = common.measure(
        f"colpali small, batch {BATCH}",
        "pages",
        count,
        tess_pages,
        ref_pages,
        "transformers ColPaliForRetrieval",
        repeats,
        notes={"model": str(path), "image_size": IMAGE_SIZE, "agreement": check},
    )
    common.print_table("ColPali document encoding (pages/s)", [result])
    common.write_json(args.json, "vision", [result], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
