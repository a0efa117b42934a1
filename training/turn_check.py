"""How much turning a crop costs the model: camera A's patches turned by a few
angles, each centre-cropped to the largest upright square inside the turned
patch, scored with onnxruntime (preprocessing from the model card).

Tiles of a slanted strip are turned back square to the frame before scoring
(src/base/tiles.rs). When the camera itself is rolled this restores the view
the model knows; when the strip is slanted by perspective, the cars inside end
up turned instead. This measures that cost against unturned patches cropped
the same amount.

    python training/turn_check.py [--data ../shared/data/cnrpark-a]
        [--model models/obstruction-v2.onnx] [--every 3]
"""
import argparse
import json
import math
import os

import numpy as np
import onnxruntime as ort
from PIL import Image


def auc(scores, labels):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    neg = len(labels) - pos
    return (ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/cnrpark-a")
    ap.add_argument("--model", default="models/obstruction-v2.onnx")
    ap.add_argument("--every", type=int, default=3, help="score every N-th patch")
    args = ap.parse_args()
    card = json.load(open(os.path.splitext(args.model)[0] + ".json"))
    inp = card["input"]
    mean, std = np.array(inp["mean"], np.float32), np.array(inp["std"], np.float32)
    size = (inp["width"], inp["height"])
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    files = [(os.path.join(args.data, c, f), int(c == "busy"))
             for c in ["busy", "free"] for f in sorted(os.listdir(os.path.join(args.data, c)))]
    files = files[:: args.every]
    print(f"{len(files)} patches of {args.data}, threshold {card['threshold']}")
    print("| turn | crop side | accuracy | ROC AUC |\n|---:|---:|---:|---:|")
    inside45 = 1 / (2 * math.cos(math.radians(45)))
    for deg, side in [(0, 1.0), (0, inside45), (10, None), (20, None), (30, None), (45, None)]:
        t = math.radians(deg)
        k = side if side else 1 / (abs(math.cos(t)) + abs(math.sin(t)))
        xs, ys = [], []
        for path, y in files:
            im = Image.open(path).convert("RGB")
            w, h = im.size
            if deg:
                im = im.rotate(deg, resample=Image.BICUBIC)
            cw, ch = w * k, h * k
            im = im.crop((round((w - cw) / 2), round((h - ch) / 2), round((w + cw) / 2), round((h + ch) / 2)))
            a = (np.asarray(im.resize(size, Image.BILINEAR), np.float32) * inp["scale"] - mean) / std
            xs.append(a.transpose(2, 0, 1))
            ys.append(y)
        x, y = np.stack(xs), np.array(ys)
        s = np.concatenate([sess.run(None, {inp["name"]: x[i:i + 256]})[0].reshape(-1)
                            for i in range(0, len(x), 256)])
        acc = ((s >= card["threshold"]) == y).mean()
        print(f"| {deg}° | {k:.3f} | {acc:.4f} | {auc(s, y):.4f} |")


if __name__ == "__main__":
    main()
