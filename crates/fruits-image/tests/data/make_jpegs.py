"""Writes the small synthetic JPEGs the jpeg_scan tests read (no photos: a
seeded pattern), with Pillow: python3 make_jpegs.py (Pillow >= 10.2 for the
restart-marker options). The files are committed; rerun only to change them."""

import random

from PIL import Image

random.seed(7)
# 61x37: not a whole number of 8x8 blocks or 16x16 MCUs, so the edge blocks count.
img = Image.new("RGB", (61, 37))
img.putdata([((x * 4) % 256, (y * 7) % 256, random.randrange(256)) for y in range(37) for x in range(61)])
img.save("baseline-420.jpg", quality=90, subsampling=2)
img.save("baseline-444-restarts.jpg", quality=90, subsampling=0, restart_marker_blocks=3)
img.save("baseline-420-restart-rows.jpg", quality=90, subsampling=2, restart_marker_rows=1)
img.convert("L").save("grey.jpg", quality=90)
img.save("progressive.jpg", quality=90, progressive=True)
