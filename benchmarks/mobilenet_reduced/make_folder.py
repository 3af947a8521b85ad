"""CIFAR-10 as an ImageNet-style folder: train/<class>/*.png (first N of train_1.npz),
val/<class>/*.png (test_exact1k.npz)."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

src, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
for split, file, count in (("train", "train_1.npz", n), ("val", "test_exact1k.npz", None)):
    d = np.load(src / file)
    x, y = d["x"][:count], d["y"][:count]
    for i, (img, label) in enumerate(zip(x, y)):
        folder = out / split / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    print(split, len(y))
