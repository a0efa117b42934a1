#!/usr/bin/env python3
"""Plain single-thread Python reference pipeline, used as a performance peer for firelane.

It does what firelane's vision path does for each camera frame:

  1. decode the JPEG with Pillow, by default at the smallest DCT scale (1,
     1/2, 1/4, 1/8, Pillow's draft()) that keeps every zone's box at least the
     model's input size, as a careful Python user would; --no-draft decodes
     at full resolution,
  2. for each zone, crop the polygon's bounding box, using firelane's rounding:
     x0 = floor(min_x*W), y0 = floor(min_y*H), x1 = ceil(max_x*W),
     y1 = ceil(max_y*H), clamped to the image and at least 1 px. It crops by
     NumPy slicing, resizes to the model card's input size with Pillow
     bilinear, and normalises per the card (float32 * scale, minus mean,
     divided by std per RGB channel, NCHW),
  3. run one onnxruntime session.run on the batch of all of the frame's zones.

This is meant to be a deliberately plain reference: one thread (onnxruntime is
held to intra_op=1 and inter_op=1, sequential execution, CPU provider), written
the obvious way a competent engineer would write it. It is not tuned and
it is not held back on purpose. Use it as a fair baseline, not a stress test.
Every frame's bytes are read into memory before timing starts, so disk I/O is
not timed. The decode stage includes turning the Pillow image into a NumPy
array, because the crops are NumPy slices of that array. The crop stage
includes stacking the batch.

Run from the repository root:

    pip install -r bench/requirements.txt
    python3 bench/peer.py --frames DIR --zones ZONES.json \
        --model models/obstruction-v1.onnx [--card models/obstruction-v1.json] \
        [--repeat N] [--warmup K] [--scores]

ZONES.json is {"zones": [{"id": "z1", "polygon": [[x, y], ...]}, ...]} with x
and y as fractions (0..1) of the image width and height. Every *.jpg in DIR is
used, sorted by name, and each one is processed --repeat times (default 1)
after --warmup untimed frames (default 3). One JSON line with the results goes
to stdout. With --scores, each frame's zone scores (from the first timed pass)
go to stderr as JSON lines, so you can check they agree with firelane's.
"""

import argparse
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import PIL
from PIL import Image


def load_card(path):
    card = json.loads(Path(path).read_text())
    inp = card["input"]
    # Refuse cards this reference doesn't implement, rather than silently
    # doing different work from firelane.
    if inp.get("layout", "NCHW") != "NCHW":
        sys.exit(f"peer.py: unsupported input.layout {inp['layout']!r} (only NCHW)")
    if inp.get("channel_order", "RGB") != "RGB":
        sys.exit(f"peer.py: unsupported input.channel_order {inp['channel_order']!r} (only RGB)")
    if inp.get("resize", "bilinear") != "bilinear":
        sys.exit(f"peer.py: unsupported input.resize {inp['resize']!r} (only bilinear)")
    if inp.get("mask_outside_polygon", False):
        sys.exit("peer.py: input.mask_outside_polygon is true, which this reference does not implement")
    return card


def load_zones(path):
    zones = json.loads(Path(path).read_text())["zones"]
    if not zones:
        sys.exit("peer.py: no zones in " + str(path))
    return zones


def bounding_box(polygon, width, height):
    """Pixel box (x0, y0, x1, y1) covering the polygon, the way firelane computes it
    (src/config/polygon.rs: Polygon::bounding_box)."""
    min_x = min([1.0] + [p[0] for p in polygon])
    min_y = min([1.0] + [p[1] for p in polygon])
    max_x = max([0.0] + [p[0] for p in polygon])
    max_y = max([0.0] + [p[1] for p in polygon])
    x0 = min(max(math.floor(min_x * width), 0), max(width - 1, 0))
    y0 = min(max(math.floor(min_y * height), 0), max(height - 1, 0))
    x1 = min(max(math.ceil(max_x * width), x0 + 1), max(width, x0 + 1))
    y1 = min(max(math.ceil(max_y * height), y0 + 1), max(height, y0 + 1))
    return x0, y0, x1, y1


def make_session(model_path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])


class Pipeline:
    def __init__(self, card, zones, session, draft=True):
        inp = card["input"]
        self.w = int(inp["width"])
        self.h = int(inp["height"])
        self.scale = np.float32(inp["scale"])
        self.mean = np.asarray(inp["mean"], dtype=np.float32)
        self.std = np.asarray(inp["std"], dtype=np.float32)
        self.input_name = inp["name"]
        self.output_name = card["output"]["name"]
        self.polygons = [z["polygon"] for z in zones]
        self.session = session
        self.draft = draft

    def draft_scale(self, width, height):
        """The smallest DCT scale (1, 2, 4, 8) that keeps every zone at least the model's input."""
        scale = 1
        for s in (2, 4, 8):
            if all(
                min(x1 - x0, y1 - y0) / s >= min(self.w, self.h)
                for x0, y0, x1, y1 in (bounding_box(p, width, height) for p in self.polygons)
            ):
                scale = s
        return scale

    def decode(self, data):
        img = Image.open(io.BytesIO(data))
        if self.draft:
            width, height = img.size
            scale = self.draft_scale(width, height)
            if scale > 1:
                # draft() picks the largest DCT scale whose size is at least this.
                img.draft("RGB", (math.ceil(width / scale), math.ceil(height / scale)))
        return np.asarray(img.convert("RGB"))

    def crops(self, frame):
        height, width = frame.shape[:2]
        batch = []
        for polygon in self.polygons:
            x0, y0, x1, y1 = bounding_box(polygon, width, height)
            crop = frame[y0:y1, x0:x1]
            resized = Image.fromarray(crop).resize((self.w, self.h), Image.BILINEAR)
            x = np.asarray(resized, dtype=np.float32) * self.scale
            x = (x - self.mean) / self.std
            batch.append(x.transpose(2, 0, 1))
        return np.stack(batch)

    def infer(self, batch):
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return out.reshape(-1)

    def run(self, data):
        return self.infer(self.crops(self.decode(data)))


def main():
    ap = argparse.ArgumentParser(description="Plain single-thread Python reference pipeline (firelane peer).")
    ap.add_argument("--frames", required=True, help="directory of *.jpg frames")
    ap.add_argument("--zones", required=True, help='JSON file: {"zones": [{"id", "polygon"}]}')
    ap.add_argument("--model", required=True, help="ONNX model")
    ap.add_argument("--card", help="model card JSON (default: model path with .json)")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the frames in the timed loop")
    ap.add_argument("--warmup", type=int, default=3, help="untimed frames run first")
    ap.add_argument("--scores", action="store_true", help="print each frame's scores to stderr")
    ap.add_argument("--no-draft", action="store_true", help="decode at full resolution (no Pillow draft())")
    args = ap.parse_args()

    if args.repeat < 1:
        sys.exit("peer.py: --repeat must be at least 1")
    if args.warmup < 0:
        sys.exit("peer.py: --warmup must not be negative")

    card_path = args.card or str(Path(args.model).with_suffix(".json"))
    card = load_card(card_path)
    zones = load_zones(args.zones)

    paths = sorted(Path(args.frames).glob("*.jpg"), key=lambda p: p.name)
    if not paths:
        sys.exit(f"peer.py: no *.jpg in {args.frames}")
    frames = [p.read_bytes() for p in paths]

    pipe = Pipeline(card, zones, make_session(args.model), draft=not args.no_draft)

    for i in range(args.warmup):
        pipe.run(frames[i % len(frames)])

    scores = [None] * len(frames)
    decode_s = crop_s = infer_s = 0.0
    clock = time.perf_counter
    start = clock()
    for r in range(args.repeat):
        for i, data in enumerate(frames):
            t0 = clock()
            frame = pipe.decode(data)
            t1 = clock()
            batch = pipe.crops(frame)
            t2 = clock()
            out = pipe.infer(batch)
            t3 = clock()
            decode_s += t1 - t0
            crop_s += t2 - t1
            infer_s += t3 - t2
            if r == 0:
                scores[i] = out
    total = clock() - start

    n = len(frames) * args.repeat
    z = len(zones)
    result = {
        "frames": n,
        "zones": z,
        "crops": n * z,
        "seconds": round(total, 6),
        "frames_per_s": round(n / total, 3),
        "crops_per_s": round(n * z / total, 3),
        "decode_ms": round(decode_s / n * 1e3, 3),
        "crop_ms": round(crop_s / n * 1e3, 3),
        "inference_ms": round(infer_s / n * 1e3, 3),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "threads": 1,
        "draft": pipe.draft,
    }

    if args.scores:
        ids = [zone["id"] for zone in zones]
        for path, s in zip(paths, scores):
            line = {"frame": path.name, "zones": ids, "scores": [round(float(v), 6) for v in s]}
            print(json.dumps(line), file=sys.stderr)

    print(json.dumps(result))


if __name__ == "__main__":
    main()
