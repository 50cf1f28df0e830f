"""The check's image dataset as CLIP_benchmark reads it (bench/tools/clip_benchmark_check.py): class folders an
ImageFolder reads, an image with its captions a line, through a transformers image processor or a torchvision
transform (open_clip's), and the class names and templates in CLIP_benchmark's forms."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class ImageClasses(Dataset):
    """(pixels, class index) over images/<class>/*.png, classes in sorted folder order (an ImageFolder)."""

    def __init__(self, root: Path, processor):
        folders = sorted(p for p in (root / "images").iterdir() if p.is_dir())
        self.classes = [p.name for p in folders]
        self.samples = [(f, c) for c, p in enumerate(folders) for f in sorted(p.glob("*.png"), key=lambda f: int(f.stem))]
        self.processor = processor

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return pixels(self.processor, path), label


class ImageCaptions(Dataset):
    """(pixels, [captions]) a line of captions.jsonl, as CLIP_benchmark's retrieval datasets give them."""

    def __init__(self, root: Path, processor):
        self.root, self.processor = root, processor
        self.rows = [json.loads(line) for line in (root / "captions.jsonl").read_text().splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        return pixels(self.processor, self.root / row["image"]), list(row["captions"])


def pixels(processor, path: Path) -> torch.Tensor:
    """An image file through a transformers image processor, or through a torchvision transform (open_clip's)."""
    with Image.open(path) as im:
        image = im.convert("RGB")
    if callable(getattr(processor, "preprocess", None)):  # a transformers image processor
        return processor(images=image, return_tensors="pt")["pixel_values"][0]
    return processor(image)


def image_text_collate(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def class_names(data: Path) -> list[str]:
    """The class folders' names in sorted order (an ImageFolder's labels), underscores as spaces; they must be
    classnames.txt's, in its order (the suite's labels)."""
    names = [c.replace("_", " ") for c in ImageClasses(data, None).classes]
    listed = [n for n in (data / "classnames.txt").read_text().splitlines() if n.strip()]
    if names != listed:
        raise ValueError(f"{data}: the class folders in sorted order {names} are not classnames.txt's {listed}")
    return names


def peer_templates(data: Path) -> list[str]:
    """templates.txt in CLIP_benchmark's form: '{c}' where the suite has '{}'."""
    return [t.replace("{}", "{c}") for t in (data / "templates.txt").read_text().splitlines() if t.strip()]


def loaders_of(data: Path, processor, batch_size: int) -> dict[str, DataLoader]:
    """The dataset's images as CLIP_benchmark's DataLoaders give them: (pixels, label) and (pixels, [captions])."""
    return {"classification": DataLoader(ImageClasses(data, processor), batch_size=batch_size),
            "retrieval": DataLoader(ImageCaptions(data, processor), batch_size=batch_size, collate_fn=image_text_collate)}
