#!/usr/bin/env python3
"""Train the firelane obstruction classifier (obstruction-v1).

Reproduces models/obstruction-v1.onnx and models/obstruction-v1.json from the
CNRPark camera-A patches (busy/ = obstructed = 1, free/ = clear = 0).

    python training/train.py --data ../shared/data/cnrpark-a --out models/

Split is by bay (SLOT number in the file name YYYYMMDD_HHMM_SLOT.jpg):
  * test       = odd SLOT numbers (held-out bays, never used for any choice)
  * validation = even SLOT numbers with SLOT % 8 == 0 (threshold + model selection)
  * train      = the remaining even SLOT numbers

Preprocessing (must match the Rust daemon): RGB -> PIL resize to 64x64 with
Image.BILINEAR ignoring aspect ratio -> x = (p/255 - mean[c]) / std[c], NCHW, RGB.
Augmentations run on the original-size patch before that final step.

Everything is seeded (python/numpy/torch, per-sample augmentation RNG derived from
(seed, epoch, index)) and runs single-threaded, so reruns give the same weights.
"""
import argparse
import hashlib
import io
import json
import math
import os
import random
import re
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZE = 64
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
NAME_RE = re.compile(r"^(\d{8})_(\d{4})_(\d+)\.jpg$", re.IGNORECASE)
COMMAND = "python training/train.py --data ../shared/data/cnrpark-a --out models/"

TRAIN_AUGMENTATIONS = [
    "horizontal flip (p=0.5)",
    "geometric (p=0.8): homography = rotation +-12 deg, scale 0.85-1.15, aspect 0.85-1.18, "
    "shift +-8%, perspective corner jitter +-8%, edge fill with mean colour",
    "25% of samples are 'hard' (raised probabilities below: light 1.0, colour cast 0.8, blur 0.8, "
    "noise 0.8, JPEG 0.9 at quality 10-40); otherwise the listed probabilities",
    "brightness 0.45-1.6 and contrast 0.55-1.5 (p=0.8)",
    "gamma 0.6-1.7 (p=0.4)",
    "shadow: random darkened polygon or band, factor 0.35-0.8, soft edge (p=0.35)",
    "colour cast: per-channel gain 0.78-1.22 (p=0.5)",
    "hue shift +-0.06 (p=0.3)",
    "saturation 0.3-1.6 (p=0.5); grayscale (p=0.05)",
    "gaussian blur radius 0.3-2.0 (p=0.35)",
    "gaussian noise sigma 2-14 (p=0.35)",
    "JPEG re-compression quality 15-95 (p=0.6)",
    "random erasing 2-18% area, aspect 0.3-3.3, random colour or noise fill (p=0.4)",
]

STRESS_DESCRIPTION = (
    "fixed seed, every image gets all of: strong light change (brightness 0.4-0.55 with gamma 1.0-1.3, "
    "or brightness 1.5-1.8 with gamma 0.75-0.95; contrast 0.6-0.8), colour cast (per-channel gain 0.75-1.25), "
    "gaussian blur radius 1.2-2.0, gaussian noise sigma 8-14, JPEG quality 12-25, "
    "occlusion (solid random-colour rectangle, 5-12% area)"
)


# --------------------------------------------------------------------------- data
def list_samples(root):
    samples = []
    for sub, label in (("free", 0), ("busy", 1)):
        d = os.path.join(root, sub)
        for fn in sorted(os.listdir(d)):
            m = NAME_RE.match(fn)
            if not m:
                continue
            samples.append((os.path.join(d, fn), label, int(m.group(3))))
    samples.sort(key=lambda s: (s[2], os.path.basename(s[0]), s[1]))
    return samples


def split_of(slot):
    if slot % 2 == 1:
        return "test"
    if slot % 8 == 0:
        return "val"
    return "train"


def load_rgb(path):
    with Image.open(path) as im:
        return im.convert("RGB")


def preprocess(img):
    """Exactly what the Rust side does: bilinear resize to 64x64, scale, normalise, CHW."""
    img = img.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = (a - MEAN) / STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))


# ------------------------------------------------------------------ augmentation
def _homography(src, dst):
    """Coefficients for PIL PERSPECTIVE transform mapping output (dst) -> input (src)."""
    A, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y]); b.append(u)
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y]); b.append(v)
    return np.linalg.solve(np.array(A, dtype=np.float64), np.array(b, dtype=np.float64)).tolist()


def mean_colour(img):
    return tuple(int(v) for v in np.asarray(img).reshape(-1, 3).mean(0))


def aug_geometric(img, rng):
    w, h = img.size
    cx, cy = w / 2.0, h / 2.0
    ang = math.radians(rng.uniform(-12, 12))
    s = rng.uniform(0.85, 1.15)
    ar = math.exp(rng.uniform(math.log(0.85), math.log(1.18)))
    sx, sy = s * math.sqrt(ar), s / math.sqrt(ar)
    tx, ty = rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.08, 0.08) * h
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = []
    for (x, y) in corners:
        x0, y0 = (x - cx) * sx, (y - cy) * sy
        xr = x0 * math.cos(ang) - y0 * math.sin(ang) + cx + tx
        yr = x0 * math.sin(ang) + y0 * math.cos(ang) + cy + ty
        xr += rng.uniform(-0.08, 0.08) * w
        yr += rng.uniform(-0.08, 0.08) * h
        dst.append((xr, yr))
    coeffs = _homography(corners, dst)
    return img.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BILINEAR, fillcolor=mean_colour(img))


def apply_gamma(img, g):
    lut = [min(255, int(round(255.0 * (i / 255.0) ** g))) for i in range(256)]
    return img.point(lut * 3)


def aug_shadow(img, rng):
    w, h = img.size
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    if rng.random() < 0.5:  # random polygon
        n = int(rng.integers(3, 7))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.3, 0.8) * max(w, h)
        angs = np.sort(rng.uniform(0, 2 * math.pi, n))
        pts = [(cx + r * rng.uniform(0.5, 1.0) * math.cos(a), cy + r * rng.uniform(0.5, 1.0) * math.sin(a))
               for a in angs]
    else:  # band across the patch
        if rng.random() < 0.5:
            x1, x2 = sorted(rng.uniform(-0.2, 1.2, 2) * w)
            sk = rng.uniform(-0.5, 0.5) * w
            pts = [(x1, 0), (x2, 0), (x2 + sk, h), (x1 + sk, h)]
        else:
            y1, y2 = sorted(rng.uniform(-0.2, 1.2, 2) * h)
            sk = rng.uniform(-0.5, 0.5) * h
            pts = [(0, y1), (0, y2), (w, y2 + sk), (w, y1 + sk)]
    d.polygon(pts, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 4.0)))
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    f = rng.uniform(0.35, 0.8)
    a = np.asarray(img, dtype=np.float32)
    a = a * (1.0 - m * (1.0 - f))
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def channel_gain(img, gains):
    a = np.asarray(img, dtype=np.float32) * np.asarray(gains, dtype=np.float32)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def hue_shift(img, dh):
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(dh * 255))) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def add_noise(img, sigma, rng):
    a = np.asarray(img, dtype=np.float32)
    a = a + rng.normal(0.0, sigma, a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def jpeg(img, q):
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(q))
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def random_erase(img, rng, area=(0.02, 0.18), noise_p=0.5):
    w, h = img.size
    a = np.array(img)
    for _ in range(10):
        s = rng.uniform(*area) * w * h
        r = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
        ew, eh = int(round(math.sqrt(s * r))), int(round(math.sqrt(s / r)))
        if 0 < ew < w and 0 < eh < h:
            x, y = int(rng.integers(0, w - ew + 1)), int(rng.integers(0, h - eh + 1))
            if rng.random() < noise_p:
                a[y:y + eh, x:x + ew] = rng.integers(0, 256, (eh, ew, 3), dtype=np.uint8)
            else:
                a[y:y + eh, x:x + ew] = rng.integers(0, 256, 3, dtype=np.uint8)
            break
    return Image.fromarray(a)


def train_augment(img, rng):
    # 25% of samples are "hard": most photometric/degradation ops applied at once, as on a poor camera
    hard = rng.random() < 0.25
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.8:
        img = aug_geometric(img, rng)
    # photometric ops in random order
    ops = []
    if rng.random() < (1.0 if hard else 0.8):
        b, c = rng.uniform(0.45, 1.6), rng.uniform(0.55, 1.5)
        ops.append(lambda im, b=b, c=c: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(b)).enhance(c))
    if rng.random() < 0.4:
        g = math.exp(rng.uniform(math.log(0.6), math.log(1.7)))
        ops.append(lambda im, g=g: apply_gamma(im, g))
    if rng.random() < 0.35:
        ops.append(lambda im: aug_shadow(im, rng))
    if rng.random() < (0.8 if hard else 0.5):
        gains = rng.uniform(0.78, 1.22, 3)
        ops.append(lambda im, gains=gains: channel_gain(im, gains))
    if rng.random() < 0.3:
        dh = rng.uniform(-0.06, 0.06)
        ops.append(lambda im, dh=dh: hue_shift(im, dh))
    if rng.random() < 0.5:
        sat = rng.uniform(0.3, 1.6)
        ops.append(lambda im, sat=sat: ImageEnhance.Color(im).enhance(sat))
    order = rng.permutation(len(ops))
    for i in order:
        img = ops[i](img)
    if rng.random() < 0.05:
        img = img.convert("L").convert("RGB")
    if rng.random() < (0.8 if hard else 0.35):
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 2.0)))
    if rng.random() < (0.8 if hard else 0.35):
        img = add_noise(img, rng.uniform(2, 14), rng)
    if rng.random() < (0.9 if hard else 0.6):
        img = jpeg(img, rng.integers(10, 41) if hard else rng.integers(15, 96))
    if rng.random() < 0.4:
        img = random_erase(img, rng)
    return img


def stress_augment(img, rng):
    """Fixed, hard corruption used only for evaluation (proxy for an unseen camera)."""
    if rng.random() < 0.5:
        b, g = rng.uniform(0.4, 0.55), rng.uniform(1.0, 1.3)    # under-exposed
    else:
        b, g = rng.uniform(1.5, 1.8), rng.uniform(0.75, 0.95)   # over-exposed / washed out
    img = ImageEnhance.Brightness(img).enhance(b)
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 0.8))
    img = apply_gamma(img, g)
    img = channel_gain(img, rng.uniform(0.75, 1.25, 3))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.2, 2.0)))
    img = add_noise(img, rng.uniform(8, 14), rng)
    img = jpeg(img, rng.integers(12, 26))
    img = random_erase(img, rng, area=(0.05, 0.12), noise_p=0.0)
    return img


# ------------------------------------------------------------------------ model
class ObstructionNet(nn.Module):
    def __init__(self, widths=(16, 32, 64, 64), dropout=0.2):
        super().__init__()
        layers, cin = [], 3
        for c in widths:
            layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, 1)

    def forward(self, x):  # -> logit [N,1]
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.fc(self.drop(x))


class WithSigmoid(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x))


# ---------------------------------------------------------------------- metrics
def roc_auc(y, p):
    y = np.asarray(y); p = np.asarray(p, dtype=np.float64)
    npos, nneg = int(y.sum()), int((1 - y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    i = 0
    while i < len(ps):  # average ranks over ties
        j = i
        while j + 1 < len(ps) and ps[j + 1] == ps[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def metrics(y, p, thr):
    y = np.asarray(y).astype(int); pred = (np.asarray(p) >= thr).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum()); fp = int(((pred == 1) & (y == 0)).sum())
    tn = int(((pred == 0) & (y == 0)).sum()); fn = int(((pred == 0) & (y == 1)).sum())
    tpr = tp / max(1, tp + fn); tnr = tn / max(1, tn + fp)
    return {"n": int(len(y)), "accuracy": round((tp + tn) / max(1, len(y)), 5),
            "balanced_accuracy": round((tpr + tnr) / 2.0, 5), "roc_auc": round(roc_auc(y, p), 5),
            "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}


def balanced_acc(y, p, thr):
    y = np.asarray(y).astype(int); pred = np.asarray(p) >= thr
    tpr = (pred & (y == 1)).sum() / max(1, (y == 1).sum())
    tnr = (~pred & (y == 0)).sum() / max(1, (y == 0).sum())
    return (tpr + tnr) / 2.0


def choose_threshold(y, p):
    """Max balanced accuracy on a grid; the midpoint of the longest run of maximisers (largest
    margin to both classes when the validation bays are separable)."""
    grid = np.round(np.arange(0.02, 0.9801, 0.005), 4)
    ba = np.array([balanced_acc(y, p, t) for t in grid])
    best = ba.max()
    is_best = np.isclose(ba, best, rtol=0, atol=1e-12)
    runs, start = [], None
    for i, b in enumerate(is_best):
        if b and start is None:
            start = i
        if (not b or i == len(is_best) - 1) and start is not None:
            end = i if b else i - 1
            runs.append((end - start, start, end))
            start = None
    _, s, e = max(runs)  # longest run (ties: the later one, i.e. max picks last)
    return float(round((grid[s] + grid[e]) / 2.0, 4)), float(best)


# ---------------------------------------------------------------------- helpers
def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def build_eval_tensor(samples, images, stress_seed=None):
    xs = []
    for i, (path, _, slot) in enumerate(samples):
        img = images[path]
        if stress_seed is not None:
            img = stress_augment(img, np.random.default_rng([stress_seed, slot, i]))
        xs.append(preprocess(img))
    return torch.from_numpy(np.stack(xs)), np.array([s[1] for s in samples], dtype=np.int64)


@torch.no_grad()
def predict(net, x, bs=256):
    net.eval()
    out = [torch.sigmoid(net(x[i:i + bs])).squeeze(1) for i in range(0, len(x), bs)]
    return torch.cat(out).numpy().astype(np.float64)


def bce_np(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CNRPark camera A folder with busy/ and free/")
    ap.add_argument("--out", required=True, help="output folder for the .onnx and .json")
    ap.add_argument("--seed", type=int, default=20150703)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--widths", default="16,32,64,64")
    ap.add_argument("--ema", type=float, default=0.99, help="EMA decay of weights per step")
    ap.add_argument("--limit", type=int, default=0, help="debug: use only N training samples")
    ap.add_argument("--name", default="obstruction-v1")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    set_seed(args.seed)
    widths = tuple(int(c) for c in args.widths.split(","))
    t_start = time.time()

    samples = list_samples(args.data)
    splits = {k: [s for s in samples if split_of(s[2]) == k] for k in ("train", "val", "test")}
    bays = {k: sorted({s[2] for s in v}) for k, v in splits.items()}
    for k in ("train", "val", "test"):
        ys = [s[1] for s in splits[k]]
        print(f"{k:5s}: {len(ys):5d} patches ({sum(ys)} obstructed, {len(ys) - sum(ys)} clear), bays {bays[k]}")
    assert not (set(bays["train"]) & set(bays["test"])) and not (set(bays["val"]) & set(bays["test"]))
    assert not (set(bays["train"]) & set(bays["val"]))

    images = {s[0]: load_rgb(s[0]) for s in samples}  # decoded once, kept in memory (never copied)

    train = splits["train"]
    if args.limit:
        train = [train[i] for i in np.random.default_rng(args.seed).permutation(len(train))[:args.limit]]
    ytr = np.array([s[1] for s in train], dtype=np.float32)

    xval, yval = build_eval_tensor(splits["val"], images)
    xval_s, _ = build_eval_tensor(splits["val"], images, stress_seed=args.seed + 1)
    print(f"data ready in {time.time() - t_start:.1f}s")

    net = ObstructionNet(widths)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"model: widths {widths}, {nparams} parameters")
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    warmup = steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total_steps - warmup))))
    pos_weight = torch.tensor([(ytr == 0).sum() / max(1.0, (ytr == 1).sum())], dtype=torch.float32)

    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    best = (float("inf"), -1, None)
    epoch_times = []
    for epoch in range(args.epochs):
        t0 = time.time()
        net.train()
        perm = np.random.default_rng([args.seed, epoch]).permutation(len(train))
        tot, nb = 0.0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb = np.stack([preprocess(train_augment(images[train[i][0]],
                                                    np.random.default_rng([args.seed, epoch, int(i)])))
                           for i in idx])
            xb = torch.from_numpy(xb)
            yb = torch.from_numpy(ytr[idx]).unsqueeze(1)
            logit = net(xb)
            loss = F.binary_cross_entropy_with_logits(logit, yb, pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(net)
            tot += loss.item(); nb += 1
        pv, pvs = predict(ema.module, xval), predict(ema.module, xval_s)
        yv = yval.astype(np.float64)
        vl, vls = bce_np(yv, pv), bce_np(yv, pvs)
        sel = 0.5 * (vl + vls)  # model selection: clean + stressed validation bays
        dt = time.time() - t0
        epoch_times.append(dt)
        mark = ""
        if sel < best[0]:
            best = (sel, epoch, {k: v.detach().clone() for k, v in ema.module.state_dict().items()})
            mark = " *"
        print(f"epoch {epoch + 1:3d}/{args.epochs} loss {tot / nb:.4f} | val bce {vl:.4f} "
              f"bal_acc@0.5 {balanced_acc(yval, pv, 0.5):.4f} | val-stress bce {vls:.4f} "
              f"bal_acc@0.5 {balanced_acc(yval, pvs, 0.5):.4f} | {dt:.1f}s{mark}", flush=True)

    print(f"selected epoch {best[1] + 1} (val selection loss {best[0]:.4f}); "
          f"mean epoch time {np.mean(epoch_times):.1f}s")
    net.load_state_dict(best[2])
    net.eval()

    # threshold on validation bays (clean patches): plateau midpoint of max balanced accuracy
    pv, pvs = predict(net, xval), predict(net, xval_s)
    thr, thr_ba = choose_threshold(yval, pv)
    print(f"threshold {thr} (balanced accuracy val {thr_ba:.4f}, val-stress {balanced_acc(yval, pvs, thr):.4f})")

    # held-out bays
    xte, yte = build_eval_tensor(splits["test"], images)
    xte_s, _ = build_eval_tensor(splits["test"], images, stress_seed=args.seed + 2)
    pt, pts = predict(net, xte), predict(net, xte_s)
    m_test = {"split": "odd SLOT numbers", **metrics(yte, pt, thr)}
    m_stress = {"split": "odd SLOT numbers", **metrics(yte, pts, thr), "augmentations": STRESS_DESCRIPTION}
    m_val = {"split": "even SLOT numbers with SLOT % 8 == 0", **metrics(yval, pv, thr)}
    m_val_s = {"split": "even SLOT numbers with SLOT % 8 == 0", **metrics(yval, pvs, thr),
               "augmentations": STRESS_DESCRIPTION + " (different seed)"}

    # ------------------------------------------------------------------ export
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, f"{args.name}.onnx")
    wrapped = WithSigmoid(net).eval()
    dummy = xte[:2].clone()
    export_kw = dict(input_names=["input"], output_names=["score"],
                     dynamic_axes={"input": {0: "N"}, "score": {0: "N"}},
                     opset_version=17, do_constant_folding=True)
    import inspect
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        export_kw["dynamo"] = False
    torch.onnx.export(wrapped, (dummy,), onnx_path, **export_kw)

    import onnx
    import onnxruntime as ort
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"onnx ops: {ops}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["score"]
    check_x = torch.cat([xte[:8], xte_s[:8]])
    with torch.no_grad():
        ref = wrapped(check_x).numpy()
    got = sess.run(["score"], {"input": check_x.numpy()})[0]
    assert got.shape == (16, 1), got.shape
    diff = float(np.abs(ref - got).max())
    print(f"onnxruntime vs torch max abs diff: {diff:.2e}")
    assert diff < 1e-4
    # full held-out evaluation through onnxruntime must give the same decisions
    ort_pt = np.concatenate([sess.run(["score"], {"input": xte[i:i + 256].numpy()})[0][:, 0]
                             for i in range(0, len(xte), 256)])
    assert metrics(yte, ort_pt, thr)["confusion"] == m_test["confusion"]
    one = xte[:1].numpy()
    for _ in range(20):
        sess.run(["score"], {"input": one})
    t0 = time.perf_counter(); reps = 500
    for _ in range(reps):
        sess.run(["score"], {"input": one})
    latency_ms = (time.perf_counter() - t0) / reps * 1000
    onnx_bytes = os.path.getsize(onnx_path)
    digest = sha256(onnx_path)
    print(f"onnx: {onnx_path} {onnx_bytes} bytes sha256 {digest}; "
          f"onnxruntime 1-thread latency {latency_ms:.3f} ms per 64x64 crop")

    card = {
        "name": args.name,
        "version": 1,
        "file": os.path.basename(onnx_path),
        "sha256": digest,
        "input": {
            "name": "input", "layout": "NCHW", "channel_order": "RGB", "width": SIZE, "height": SIZE,
            "resize": "bilinear", "scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "mask_outside_polygon": False,
        },
        "output": {"name": "score", "kind": "probability", "meaning": "probability that the zone is obstructed"},
        "labels": {"0": "clear", "1": "obstructed"},
        "threshold": thr,
        "metrics": {
            "heldout_bays": m_test,
            "heldout_bays_stress": m_stress,
            "validation_bays": m_val,
            "validation_bays_stress": m_val_s,
        },
        "training": {
            "command": COMMAND,
            "seed": args.seed,
            "epochs": args.epochs,
            "selected_epoch": best[1] + 1,
            "selection": "weight EMA (decay per step " + str(args.ema) + "); epoch with lowest mean BCE "
                         "on validation bays (clean + fixed-seed stress)",
            "threshold_rule": "maximise balanced accuracy on validation bays (clean patches); midpoint "
                              "of the longest maximising run on a 0.005 grid",
            "train_bays": bays["train"],
            "val_bays": bays["val"],
            "test_bays": bays["test"],
            "n_train": len(train), "n_val": len(splits["val"]), "n_test": len(splits["test"]),
            "architecture": f"4x [conv3x3(no bias)+BN+ReLU+maxpool2] widths {list(widths)}, global mean pool, "
                            f"dropout 0.2, linear -> 1 logit, sigmoid in graph; {nparams} parameters",
            "optimizer": f"AdamW lr {args.lr} wd {args.weight_decay}, batch {args.batch_size}, 1 epoch warmup + "
                         f"cosine, BCE with pos_weight {float(pos_weight):.4f}",
            "onnx_opset": 17,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "augmentations": TRAIN_AUGMENTATIONS,
        },
        "data": {
            "name": "CNRPark camera A patches",
            "provenance": "CNRPark dataset by G. Amato, F. Carrara, F. Falchi, C. Gennaro, C. Meghini, C. Vairo "
                          "(ISTI-CNR): 6,171 patches (busy 3,621 / free 2,550) of 51 parking bays seen by "
                          "camera A on 2015-07-03, one picture per bay every 5 minutes 08:05-18:05.",
            "licence": "Open Data Commons Open Database License (ODbL) v1.0",
            "citation": [
                "Amato et al., \"Deep learning for decentralized parking lot occupancy detection\", "
                "Expert Systems with Applications 72 (2017) 327-334.",
                "Amato et al., \"Car parking occupancy detection using smart camera networks and deep learning\", "
                "IEEE ISCC 2016, 1212-1217.",
            ],
            "note": "The images are not in this repository; the model is trained on them.",
        },
    }
    card_path = os.path.join(args.out, f"{args.name}.json")
    with open(card_path, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")

    print(json.dumps(card["metrics"], indent=2))
    print(f"threshold {thr}; wrote {onnx_path} and {card_path}; total {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
