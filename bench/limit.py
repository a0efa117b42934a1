#!/usr/bin/env python3
"""The physical limit of a frame for BENCHMARKS.md, one thread.

With zones and a model (what `firelane bench --peer` runs), one JSON line:
decode-only time of the frames at the DCT scale the careful peer picks (the
smallest that keeps every zone at least the model's input: Pillow
`Image.open` + `draft` + `load`, no conversion), plus the model on one
frame's crops as a single onnxruntime call (best of 15, 1 thread: this
core's best measured rate on this model). Their sum is the limit.

    OPENBLAS_NUM_THREADS=1 python3 bench/limit.py --frames data/bench/frames \
        --zones data/bench/zones.json --model MODEL.onnx [--card MODEL.json]

Without a model, the older text report: decode-only at full, 1/2 and 1/4
scale and this core's single-thread sgemm rate.

    OPENBLAS_NUM_THREADS=1 python3 bench/limit.py [data/bench/frames]

The frames folder is the one `firelane bench` prepares.
"""
import argparse
import glob
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def decode_ms(frames, scale, repeat=3):
    """Mean decode-only time per frame at 1/scale (Pillow's draft), and the size decoded."""
    start, n = time.perf_counter(), 0
    for _ in range(repeat):
        for data in frames:
            img = Image.open(io.BytesIO(data))
            if scale > 1:
                img.draft("RGB", (math.ceil(img.size[0] / scale), math.ceil(img.size[1] / scale)))
            img.load()
            n += 1
    return (time.perf_counter() - start) / n * 1e3, img.size


def limit(frames, args):
    card = peer.load_card(args.card or str(Path(args.model).with_suffix(".json")))
    pipe = peer.Pipeline(card, peer.load_zones(args.zones), peer.make_session(args.model))
    scale = pipe.draft_scale(*Image.open(io.BytesIO(frames[0])).size)
    dec, size = decode_ms(frames, scale)
    batch = pipe.crops(pipe.decode(frames[0]))
    pipe.infer(batch)
    best = math.inf
    for _ in range(15):
        t0 = time.perf_counter()
        pipe.infer(batch)
        best = min(best, time.perf_counter() - t0)
    model = best * 1e3
    print(json.dumps({
        "frames": len(frames), "zones": len(pipe.polygons), "scale": scale,
        "decoded": f"{size[0]}x{size[1]}", "decode_ms": round(dec, 3), "model_ms": round(model, 3),
        "limit_ms": round(dec + model, 3), "limit_frames_per_s": round(1e3 / (dec + model), 2),
    }))


def text_report(frames):
    print("frames", len(frames))
    for scale in (1, 2, 4):
        ms, size = decode_ms(frames, scale)
        print(f"decode only at 1/{scale}: {ms:.2f} ms per frame ({size[0]}x{size[1]})")
    a = np.random.rand(1024, 1024).astype(np.float32)
    b = np.random.rand(1024, 1024).astype(np.float32)
    a @ b
    start, k = time.perf_counter(), 20
    for _ in range(k):
        a @ b
    print(f"sgemm 1024^3, 1 thread: {2 * 1024**3 / ((time.perf_counter() - start) / k) / 1e9:.1f} GFLOP/s")


ap = argparse.ArgumentParser(description="The physical limit of a frame, one thread.")
ap.add_argument("folder", nargs="?", default=None, help="frames folder (the older text report)")
ap.add_argument("--frames", help="frames folder (default data/bench/frames)")
ap.add_argument("--zones", help='JSON file: {"zones": [{"id", "polygon"}]}')
ap.add_argument("--model", help="ONNX model: report the whole limit as one JSON line")
ap.add_argument("--card", help="model card JSON (default: model path with .json)")
args = ap.parse_args()
folder = args.frames or args.folder or "data/bench/frames"
frames = [open(p, "rb").read() for p in sorted(glob.glob(f"{folder}/*.jpg"))]
if not frames:
    sys.exit(f"limit.py: no *.jpg in {folder} (run firelane bench first)")
if args.model:
    if not args.zones:
        sys.exit("limit.py: --model needs --zones")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import peer  # noqa: E402  (beside this file; its rules are the careful peer's)
    limit(frames, args)
else:
    text_report(frames)
