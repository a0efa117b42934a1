#!/usr/bin/env python3
"""A scenario in another camera's shape: its frames and its zone polygons
transformed together, for `firelane replay` (README, *Measured*).

    python3 bench/variant.py SRC DST rotate DEG      # a camera rolled DEG degrees
    python3 bench/variant.py SRC DST perspective K   # seen in perspective: the
        right edge shrinks to K of the height, the picture foreshortened to it

Rotation grows the canvas to hold the turned frame (grey outside); zones turn
with it, so a strip becomes a kerb across the picture at a slant.
Perspective is a homography of the whole frame: strips shrink towards the far
side and taper along their length. Truth, sensors and the frame list are
copied as they are. Needs Pillow and NumPy (bench/requirements.txt).
"""
import json
import math
import os
import shutil
import sys

import numpy as np
from PIL import Image


def homography(src, dst):
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst):
        a += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        b += [u, v]
    return np.linalg.solve(np.array(a, float), np.array(b, float))


def main():
    src, dst, kind, amount = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    sc = json.load(open(f"{src}/scenario.json"))
    cam = sc["cameras"][0]
    w, h = cam["width"], cam["height"]
    if kind == "rotate":
        s, c = math.sin(math.radians(amount)), math.cos(math.radians(amount))
        nw, nh = Image.new("RGB", (w, h)).rotate(amount, expand=True).size

        def point(x, y):
            # PIL turns counter-clockwise by `amount` about the centre.
            dx, dy = x * w - w / 2, y * h - h / 2
            return (dx * c + dy * s + nw / 2) / nw, (-dx * s + dy * c + nh / 2) / nh

        def frame(im):
            return im.rotate(amount, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 90, 90))
    elif kind == "perspective":
        nw, nh = w, h
        corners = [(0, 0), (w, 0), (w, h), (0, h)]
        far = [(0, 0), (w, h * (1 - amount) / 2), (w, h * (1 + amount) / 2), (0, h)]
        fwd, inv = homography(corners, far), homography(far, corners)

        def point(x, y):
            px, py = x * w, y * h
            d = fwd[6] * px + fwd[7] * py + 1
            return (fwd[0] * px + fwd[1] * py + fwd[2]) / d / w, (fwd[3] * px + fwd[4] * py + fwd[5]) / d / h

        def frame(im):
            return im.transform((w, h), Image.Transform.PERSPECTIVE, tuple(inv),
                                resample=Image.Resampling.BICUBIC, fillcolor=(90, 90, 90))
    else:
        sys.exit(f"variant: unknown kind {kind!r}: rotate or perspective")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    cam["width"], cam["height"] = nw, nh
    for zone in cam["zones"]:
        zone["polygon"] = [[round(v, 6) for v in point(x, y)] for x, y in zone["polygon"]]
    json.dump(sc, open(f"{dst}/scenario.json", "w"), indent=1)
    for f in ["sensors.jsonl", "truth.json", "labels.csv", "frames.jsonl"]:
        if os.path.exists(f"{src}/{f}"):
            shutil.copy(f"{src}/{f}", f"{dst}/{f}")
    for line in open(f"{src}/frames.jsonl"):
        name = json.loads(line)["file"]
        os.makedirs(os.path.dirname(f"{dst}/{name}"), exist_ok=True)
        frame(Image.open(f"{src}/{name}").convert("RGB")).save(f"{dst}/{name}", quality=88)


if __name__ == "__main__":
    main()
