"""Search page images with text queries (ColPali late interaction).

    python examples/vision_search.py --images page1.png page2.jpg      # colpali-v1.3-hf
    python examples/vision_search.py --model ./colpali --images scans/*.png
    python examples/vision_search.py --pdf report.pdf                   # needs pypdfium2

Without images it makes two synthetic pages (a bar chart and a text block) as arrays.
"""

from __future__ import annotations

import argparse

import numpy as np

from tessera import TesseraVision, VisionEmbedding


def synthetic_pages() -> list[np.ndarray]:
    chart = np.full((448, 448, 3), 255, dtype=np.uint8)
    for i, height in enumerate([120, 260, 180, 330]):
        chart[448 - height : 440, 40 + i * 100 : 100 + i * 100] = (40, 90, 200)
    text = np.full((448, 448, 3), 255, dtype=np.uint8)
    for line in range(20, 440, 22):
        text[line : line + 8, 30 : 30 + (line * 7) % 380 + 40] = 30
    return [chart, text]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="colpali-v1.3-hf")
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--pdf", default=None)
    parser.add_argument(
        "--query",
        action="append",
        default=None,
        help="may be repeated; default: two sample queries",
    )
    args = parser.parse_args()

    model = TesseraVision(args.model)
    print(f"model: {model!r}")
    pages: list[VisionEmbedding]
    if args.pdf:
        pages = model.encode_pdf(args.pdf)
        names = [p.source or "" for p in pages]
    elif args.images:
        pages = model.encode_documents(args.images)
        names = list(args.images)
    else:
        pages = model.encode_documents(synthetic_pages())
        names = ["synthetic bar chart", "synthetic text page"]
    queries = args.query or ["a bar chart with four bars", "a page of dense text"]
    scores = model.similarity_matrix(queries, pages)
    for query, row in zip(queries, scores):
        print(f"query: {query}")
        for index in np.argsort(-row):
            print(f"  {row[index]:8.3f}  {names[index]}")


if __name__ == "__main__":
    main()
