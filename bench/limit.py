#!/usr/bin/env python3
"""The physical limit's parts for BENCHMARKS.md, one thread: libjpeg-turbo
(through Pillow) decode-only time of the bench's frames at full, 1/2 and 1/4
DCT scale, and this core's single-thread sgemm rate.

    OPENBLAS_NUM_THREADS=1 python3 bench/limit.py [data/bench/frames]

The frames folder is the one `firelane bench` prepares.
"""
import glob
import io
import math
import sys
import time

import numpy as np
from PIL import Image

folder = sys.argv[1] if len(sys.argv) > 1 else "data/bench/frames"
frames = [open(p, "rb").read() for p in sorted(glob.glob(f"{folder}/*.jpg"))]
if not frames:
    sys.exit(f"limit.py: no *.jpg in {folder} (run firelane bench first)")
print("frames", len(frames))
for scale in (1, 2, 4):
    start, n = time.perf_counter(), 0
    for _ in range(3):
        for data in frames:
            img = Image.open(io.BytesIO(data))
            if scale > 1:
                img.draft("RGB", (math.ceil(img.size[0] / scale), math.ceil(img.size[1] / scale)))
            img.load()
            n += 1
    ms = (time.perf_counter() - start) / n * 1e3
    print(f"decode only at 1/{scale}: {ms:.2f} ms per frame ({img.size[0]}x{img.size[1]})")
a = np.random.rand(1024, 1024).astype(np.float32)
b = np.random.rand(1024, 1024).astype(np.float32)
a @ b
start, k = time.perf_counter(), 20
for _ in range(k):
    a @ b
print(f"sgemm 1024^3, 1 thread: {2 * 1024**3 / ((time.perf_counter() - start) / k) / 1e9:.1f} GFLOP/s")
