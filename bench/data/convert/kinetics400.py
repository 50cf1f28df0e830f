"""Kinetics-400 validation (Kay et al. 2017, arXiv 1705.06950), as the CVDF mirror and the ActivityNet
downloader ship it.

Release files (CVDF, https://github.com/cvdfoundation/kinetics-dataset: k400/annotations/val.csv; the
original DeepMind archive: validate.csv; same columns):
  validate.csv   label,youtube_id,time_start,time_end,split   (one row a clip; some copies add is_cc)
and the clips as <youtube_id>_<time_start:06d>_<time_end:06d>.mp4, flat (CVDF's k400/val/) or in one folder
per label (the ActivityNet downloader, Crawler/Kinetics/download.py of https://github.com/activitynet/ActivityNet,
and CVDF's arrange_by_classes.py). YouTube takes videos down: every copy misses a few percent of the clips
(CVDF's val: 19,881 videos for 19,906 rows); they are dropped and counted (convert.json).

Class names are the labels of the file, sorted; prompts are CLIP's Kinetics-700 ensemble (28 templates,
openai/CLIP data/prompts.md), the one zero-shot video classifiers (CLIP, PE) report Kinetics with.
"""

from __future__ import annotations

from itertools import product

from bench.data.convert.common import Context, ConvertError, find_media, register
from bench.data.convert.layouts import TEMPLATES, write_classification

# -- Kinetics-400 ---------------------------------------------------------------------------------------------

# CLIP's Kinetics-700 prompts (openai/CLIP, data/prompts.md): 4 openings x 7 phrasings
KINETICS_TEMPLATES = [f"{a} {b}." for a, b in product(
    ("a photo of", "a video of", "a example of", "a demonstration of"),
    ("{}", "a person {}", "a person using {}", "a person doing {}", "a person during {}", "a person performing {}",
     "a person practicing {}"))]
COLUMNS = {"label", "youtube_id", "time_start", "time_end"}


def clip_name(row: dict[str, str], where: str) -> str:
    """<youtube_id>_<start:06d>_<end:06d>.mp4, as the downloaders name a trimmed clip."""
    try:
        start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except ValueError:
        raise ConvertError(f"{where}: time_start/time_end must be seconds, got {row['time_start']!r}, "
                           f"{row['time_end']!r}") from None
    return f"{row['youtube_id']}_{start:06d}_{end:06d}.mp4"


@register("kinetics400", "Kinetics-400 validation (validate.csv): classification, 400 classes",
          options=(TEMPLATES,),
          source="validate.csv (label,youtube_id,time_start,time_end,split) of the Kinetics-400 release, "
                 "https://github.com/cvdfoundation/kinetics-dataset")
def convert(ctx: Context) -> dict[str, dict]:
    names = ("validate.csv", "kinetics_400_validate.csv", "val.csv", "annotations/val.csv", "k400/annotations/val.csv")
    rows, where = ctx.csv(*names), ctx.source(*names)
    if not rows or not COLUMNS <= set(rows[0]):
        raise ConvertError(f"{where}: needs columns {', '.join(sorted(COLUMNS))} (the Kinetics "
                           f"label,youtube_id,time_start,time_end,split), got {list(rows[0]) if rows else 'no rows'}")
    classes = sorted({r["label"].strip() for r in rows})
    items = []
    for n, r in enumerate(rows, start=2):
        base, label = clip_name(r, f"{where}:{n}"), r["label"].strip()
        path = find_media(ctx, [base, f"val/{base}", f"{label}/{base}", f"{label.replace(' ', '_')}/{base}"])
        if path is not None:
            items.append({"video": path, "label": label})
    return write_classification(ctx, items, classes, KINETICS_TEMPLATES)
