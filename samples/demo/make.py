"""Draws the demo sample: a street with two fire-lane strips and a hydrant
bay, seen from above, and cars that come and go on a known timeline.

Every pixel is drawn here (no photograph), so the sample carries the
project's own licence. Run with Pillow and NumPy:
    python samples/demo/make.py samples/demo
The frames are committed; this script is kept to show how they were made.
"""
import json, os, sys
from datetime import datetime, timedelta, timezone

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 960, 540
STEP_S = 30
FRAMES = 36
T0 = datetime(2026, 6, 1, 9, 0, 0, tzinfo=timezone.utc)
GRACE_S = 120

# Zones in pixels (x0, y0, x1, y1); written as fractions.
ZONES = {
    "lane-west": (40, 170, 460, 320),
    "lane-east": (500, 170, 920, 320),
    "hydrant-bay": (400, 360, 560, 520),
}
# (zone, first frame, last frame, colour, parked along the kerb)
VISITS = [
    ("lane-west", 3, 24, (20, 20, 24), False),
    ("lane-east", 8, 11, (232, 232, 236), False),
    ("lane-east", 20, FRAMES - 1, (30, 60, 150), False),
    ("hydrant-bay", 12, 30, (150, 150, 160), False),
]
SENSORS = {"hydrant-loop": "hydrant-bay"}

rng = np.random.default_rng(7)


def background():
    base = rng.normal(100, 9, (H, W, 1))
    img = np.concatenate([base, base, base * 1.03], 2).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.8))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, W, 140], fill=(168, 166, 160))          # pavement
    for x in range(0, W, 60):                                    # paving joints
        d.line([(x, 0), (x, 140)], fill=(150, 148, 142), width=2)
    d.rectangle([0, 140, W, 160], fill=(190, 40, 40))          # red kerb
    for (x0, y0, x1, y1) in ZONES.values():                      # painted lines
        d.rectangle([x0, y0, x1, y1], outline=(225, 215, 80), width=4)
    d.text((200, 240), "FIRE LANE", fill=(225, 215, 80))
    d.text((660, 240), "FIRE LANE", fill=(225, 215, 80))
    d.ellipse([460, 100, 500, 140], fill=(200, 30, 30))        # hydrant
    return im


def car(length, width, colour):
    im = Image.new("RGBA", (width + 8, length + 8), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    r = int(width * 0.25)
    d.rounded_rectangle([6, 6, width + 6, length + 6], radius=r, fill=(30, 30, 30, 170))
    d.rounded_rectangle([0, 0, width, length], radius=r, fill=colour)
    glass = (35, 45, 55)
    d.rounded_rectangle([width * .12, length * .2, width * .88, length * .38], radius=4, fill=glass)
    d.rounded_rectangle([width * .15, length * .72, width * .85, length * .85], radius=4, fill=glass)
    roof = tuple(min(255, int(c * 1.15)) for c in colour)
    d.rectangle([width * .18, length * .42, width * .82, length * .68], fill=roof)
    return im


def main(out):
    os.makedirs(os.path.join(out, "frames", "street"), exist_ok=True)
    bg = background()
    frames, sensors = [], []
    occupied = {s: False for s in SENSORS}
    for i in range(FRAMES):
        t = T0 + timedelta(seconds=i * STEP_S)
        im = bg.copy()
        # The light drifts a little over the recording, as outdoors.
        im = Image.eval(im, lambda v, k=0.92 + 0.16 * i / FRAMES: min(255, int(v * k)))
        here = set()
        for zone, first, last, colour, horizontal in VISITS:
            if not first <= i <= last:
                continue
            here.add(zone)
            x0, y0, x1, y1 = ZONES[zone]
            c = car(210, 120, colour) if horizontal else car(140, 110, colour)
            if horizontal:
                c = c.rotate(90, expand=True)
                x = x0 + 20 + (i % 3) * 4 if zone == "lane-west" else x1 - c.width - 30
                y = y0 + 12
            elif zone == "hydrant-bay":
                x, y = x0 + 22, y0 + 8
            else:
                # Nose to the kerb, somewhere along the strip.
                x, y = x0 + 8 + {"lane-west": 1, "lane-east": 2}[zone] * 140 + (i % 3) * 3, y0 + 4
            im.paste(c, (int(x), int(y)), c)
        stamp = int(t.timestamp() * 1000)
        name = f"frames/street/{stamp}.jpg"
        im.save(os.path.join(out, name), quality=82)
        at = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        frames.append({"camera": "street", "captured_at": at, "file": name})
        for s, zone in SENSORS.items():
            if (zone in here) != occupied[s]:
                occupied[s] = zone in here
                sensors.append({"sensor": s, "measured_at": at, "occupied": occupied[s]})
    zones = [{"id": z, "polygon": [[x0 / W, y0 / H], [x1 / W, y0 / H], [x1 / W, y1 / H], [x0 / W, y1 / H]]}
             for z, (x0, y0, x1, y1) in ZONES.items()]
    scenario = {
        "name": "demo",
        "description": "A drawn street: two fire-lane strips and a hydrant bay; cars park in them on a known timeline.",
        "grace_s": GRACE_S,
        "cameras": [{"id": "street", "width": W, "height": H, "zones": zones}],
        "sensors": [{"id": s, "zone": z} for s, z in SENSORS.items()],
    }
    truth = {"grace_s": GRACE_S, "zones": {}}
    for z in ZONES:
        runs = [(f, l) for (zz, f, l, _, _) in VISITS if zz == z]
        obs = []
        for f, l in runs:
            start = T0 + timedelta(seconds=f * STEP_S)
            last = T0 + timedelta(seconds=l * STEP_S)
            cleared = None if l == FRAMES - 1 else (T0 + timedelta(seconds=(l + 1) * STEP_S))
            fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None
            obs.append({"start": fmt(start), "last_obstructed": fmt(last), "cleared": fmt(cleared)})
        viol = [o for (o, (f, l)) in zip(obs, runs) if (l - f) * STEP_S >= GRACE_S]
        truth["zones"][z] = {"obstructions": obs, "violations": viol}
    with open(os.path.join(out, "scenario.json"), "w") as f:
        json.dump(scenario, f, indent=1)
    with open(os.path.join(out, "frames.jsonl"), "w") as f:
        f.writelines(json.dumps(x) + "\n" for x in frames)
    with open(os.path.join(out, "sensors.jsonl"), "w") as f:
        f.writelines(json.dumps(x) + "\n" for x in sensors)
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
