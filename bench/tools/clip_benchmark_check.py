"""The suite's zero-shot scoring against a peer's: CLIP_benchmark (LAION's `clip-benchmark` package) scores the same
CLIP on the same image files, and the two tables must agree to rounding (docs/peers.md).

    pip install --no-deps --target .peers/clip_benchmark clip-benchmark==1.6.2
    PYTHONPATH=.peers/clip_benchmark .venv/bin/python -m bench.tools.clip_benchmark_check
    PYTHONPATH=.peers/clip_benchmark .venv/bin/python -m bench.tools.clip_benchmark_check --model /models/clip-vit-base-patch32

`clip-benchmark` is installed without its dependencies: they name open_clip_torch and torchvision, and the package
registry has torchvision only as a CUDA build that does not import beside the CPU torch. What this check calls of
it (clip_benchmark.metrics.zeroshot_classification and .zeroshot_retrieval) needs only torch, tqdm and
scikit-learn, which the suite has. Those take a model with `encode_image` / `encode_text`, a tokenizer callable
and a torch DataLoader: `PeerCLIP` below wraps a transformers CLIP folder that way (the model's own image processor
on each image, its own tokenizer padding to the longest text, as the suite's adapter does), and the DataLoaders
read the files in CLIP_benchmark's conventions (class folders for classification, an image with its captions for
retrieval). Version 1.6.2's zeroshot_classification.evaluate() fails under numpy >= 2.4 (NUMPY_ISSUE): its
classification metrics are then read from its own classifier and logits, by the definitions evaluate() uses.

With no --model, a tiny CLIP (word-level tokenizer over the shapes world's words), trained for a few steps on the
dataset's images and captions, is written and used; with no --data, a small image dataset is written, in a layout
both read: images/<class>/<n>.png (the class folders an ImageFolder reads), and the suite's dataset.yaml over the
same files (classification: `path label` lines, class names, templates; retrieval: an image with its captions a
line; docs/data.md). The classes are left unbalanced, so that top-1 and the mean per-class recall differ, and no
two images share a caption (the two tie-breaking rules differ, docs/peers.md).

What is compared (suite record <-> CLIP_benchmark metric, the latter x100):
- classification top1 <-> acc1, top5 <-> acc5 (CLIP_benchmark: nan under 5 classes);
- the mean per-class recall (CLIP_benchmark's `mean_per_class_recall`, sklearn's balanced accuracy) is not a suite
  record: it is computed here from the suite's per-item predictions (each item's label and best class);
- retrieval t2v_R@k <-> image_retrieval_recall@k (each caption finds its image among the top k images), v2t_R@k <->
  text_retrieval_recall@k (an image has a hit when any of its captions is among its top k captions), k = 1, 5, 10;
  the suite's median ranks have no counterpart.
The suite scores classification with `eval.prompt_ensemble: embeddings`, CLIP_benchmark's zero-shot classifier
(per class, the mean of its templates' unit-norm text embeddings, renormalised); with the default `scores` (each
template's cosines averaged) the numbers may differ whenever there is more than one template, and the table shows
that run too. CLIP_benchmark runs in fp32 (amp off): its default autocast would score in bfloat16 on a CPU.
Exit status: 0 when every compared pair agrees (within --tolerance, in percentage points), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from sklearn.metrics import balanced_accuracy_score
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch.utils.data import DataLoader
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoTokenizer,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    PreTrainedTokenizerFast,
)

from bench.data.text import vocabulary
from bench.results import read_jsonl
from bench.tools import evaluate, reference
from bench.tools.clip_benchmark_files import ImageCaptions, class_names, loaders_of, peer_templates

PACKAGE = "clip-benchmark"
# in sorted order, the order an ImageFolder gives its class folders
CLASSES = ["blue square", "green triangle", "orange cross", "purple diamond", "red circle", "yellow star"]
COLOURS = {"red": (200, 40, 40), "blue": (40, 60, 200), "green": (40, 180, 60), "yellow": (220, 210, 40),
           "purple": (140, 50, 170), "orange": (240, 140, 30)}
WORDS = ["small", "big", "tiny", "huge", "little", "large", "bigger", "smaller"]  # one per image of a class
TEMPLATES = ["{}", "a {}", "in this clip a {}"]  # the suite's '{}'; CLIP_benchmark's '{c}'
RECALL_K = (1, 5, 10)
SIZE = 32


# ---------------------------------------------------------------------------------------------- the inputs
def tiny_clip(folder: Path, data: Path | None = None, steps: int = 10, seed: int = 0) -> Path:
    """A tiny transformers CLIP with a word-level tokenizer over the shapes world's words and a CLIP image processor
    at SIZE px, saved as a folder `hf:FOLDER` reads. Random, then (with `data`) trained for a few contrastive steps on
    the dataset's images and first captions, so that its numbers are neither chance nor perfect: a comparison of
    zeros would show little."""
    words = ["<pad>", "<unk>", "<bos>", "<eos>", *vocabulary()]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                        eos_token="<eos>", model_max_length=32)
    text = dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=32, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                  image_size=SIZE)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    processor = CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    if data is not None and steps:
        rows = ImageCaptions(data, processor)
        images = torch.stack([rows[i][0] for i in range(len(rows))])
        texts = tokenizer([r["captions"][0] for r in rows.rows], padding="longest", return_tensors="pt")
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        model.train()
        for _ in range(steps):
            loss = model(pixel_values=images, input_ids=texts["input_ids"], attention_mask=texts["attention_mask"],
                         return_loss=True).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
    for part in (model, tokenizer, processor):
        part.save_pretrained(folder)
    return folder


def write_dataset(root: Path, per_class: int = 4, noise: int = 120, templates: list[str] | None = None, size: int = SIZE,
                  seed: int = 0) -> Path:
    """Images of coloured noise, class c with per_class + c % 2 of them (unbalanced), as class folders
    (images/<class_with_underscores>/<n>.png) and the suite's dataset folder over the same files: dataset.yaml,
    val.txt (`path label`), classnames.txt, templates.txt, captions.jsonl (two captions an image)."""
    if per_class + 1 > len(WORDS):
        raise ValueError(f"per_class={per_class}: at most {len(WORDS) - 1} (each image of a class has a caption word of its own)")
    rng = np.random.default_rng(seed)
    templates = TEMPLATES if templates is None else templates
    lines, captions = [], []
    for c, name in enumerate(CLASSES):
        colour = np.array(COLOURS[name.split()[0]], dtype=np.int16)
        for n in range(per_class + c % 2):
            rel = f"images/{name.replace(' ', '_')}/{n}.png"
            pixels = np.clip(colour + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255).astype(np.uint8)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / rel)
            lines.append(f"{rel} {c}")
            word = WORDS[n]  # no two images share a caption: a tie would rank by a rule, not by the model
            captions.append({"image": rel, "captions": [f"a {word} {name}", f"the {name} is {word}"]})
    (root / "val.txt").write_text("\n".join(lines) + "\n")
    (root / "classnames.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "templates.txt").write_text("\n".join(templates) + "\n")
    (root / "captions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in captions))
    (root / "dataset.yaml").write_text(json.dumps({"tasks": {
        "classification": {"annotations": "val.txt", "classnames": "classnames.txt", "templates": "templates.txt"},
        "retrieval": {"annotations": "captions.jsonl"}}}, indent=2) + "\n")
    return root


# ---------------------------------------------------------------------------------------------- the suite
def suite_run(folder: Path, data: Path, out: Path, ensemble: str = "embeddings", frames: int = 2,
              spec: str | None = None) -> Path:
    """`python -m bench.eval hf:FOLDER --sets classification=DATA retrieval=DATA --size 0 --frames 2` with
    eval.prompt_ensemble set (the command line has no switch for it): the reference run's folder. spec: another
    reference spec than hf:FOLDER (open_clip:FOLDER)."""
    args = evaluate.parser().parse_args([spec or f"hf:{folder}", "--sets", f"classification={data}", f"retrieval={data}",
                                         "--size", "0", "--frames", str(frames), "--output-dir", str(out)])
    model = reference.load_reference(args.path, frames)
    cfg = reference.carrier_config(model, args.output_dir)
    cfg = replace(cfg, eval=replace(cfg.eval, prompt_ensemble=ensemble))
    cfg, skipped = reference.applicable(evaluate.with_settings(cfg, args), model)
    if not evaluate.validated(cfg, args.path):
        raise SystemExit(2)
    _, run = reference.evaluate_reference(cfg, model, skipped)
    return run.path


def suite_metrics(run: Path) -> dict[str, float]:
    """{metric: value} of a reference run's classification and retrieval records, and the mean per-class recall
    computed from its per-item classification predictions (`classification/mean_per_class_recall`)."""
    out = {f"{r['task']}/{r['metric']}": r["value"] for r in read_jsonl(run / "evals.jsonl")
           if r["task"] in ("classification", "retrieval") and r.get("dataset") != "mean"}
    kept = suite_predictions(run)
    labels = np.array([r["label"] for r in kept])
    best = np.array([r["top5"][0] for r in kept])
    out["classification/mean_per_class_recall"] = 100 * float(np.mean([np.mean(best[labels == c] == c)
                                                                        for c in np.unique(labels)]))
    return out


def suite_predictions(run: Path) -> list[dict]:
    """The reference run's per-item classification outputs ({item, label, top5})."""
    (kept,) = [f for f in (run / "predictions" / f"{0:012d}").glob("classification__*.jsonl")
               if not f.name.endswith(".outcomes.jsonl")]
    return read_jsonl(kept)


# ---------------------------------------------------------------------------------------------- the peer
class PeerCLIP(nn.Module):
    """A transformers CLIP as CLIP_benchmark calls a model: encode_image(pixels), encode_text(tokens)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    @staticmethod
    def _features(out: Any) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._features(self.model.get_image_features(pixel_values=pixel_values))

    def encode_text(self, tokens) -> torch.Tensor:
        keep = {k: tokens[k] for k in ("input_ids", "attention_mask") if k in tokens}
        return self._features(self.model.get_text_features(**keep))


def peer_tokenizer(tokenizer, limit: int):
    """texts -> a BatchEncoding (it has .to(device), all CLIP_benchmark asks of tokens), padded to the longest."""
    longest = min(int(getattr(tokenizer, "model_max_length", limit) or limit), limit)

    def tokenize(texts: list[str]):
        return tokenizer(list(texts), padding="longest", truncation=True, max_length=longest, return_tensors="pt")

    return tokenize


def peer_metrics(folder: Path, data: Path, batch_size: int = 8, setup=None) -> dict[str, Any]:
    """CLIP_benchmark's zero-shot classification and retrieval metrics of the CLIP folder on the dataset (fp32), and
    under "classification/via" how the classification metrics were had (see peer_classification). setup: how the
    model and the DataLoaders are made (peer_setup: a transformers folder; open_clip_setup: an open_clip model)."""
    from clip_benchmark.metrics import zeroshot_retrieval  # lazy: an optional peer package

    model, loaders = (setup or peer_setup)(folder, data, batch_size)
    cls = peer_classification(model, loaders["classification"], class_names(data), peer_templates(data))
    with torch.no_grad():
        ret = zeroshot_retrieval.evaluate(model["model"], loaders["retrieval"], model["tokenizer"], "cpu", amp=False,
                                          recall_k_list=list(RECALL_K))
    return {**{f"classification/{k}": v for k, v in cls.items()}, **{f"retrieval/{k}": v for k, v in ret.items()}}


NUMPY_ISSUE = ("zeroshot_classification.evaluate() fails under numpy >= 2.4 (float() of a 1-element array in its "
               "accuracy(); LAION-AI/CLIP_benchmark issue #147): acc1, acc5 and mean_per_class_recall read by their "
               "definitions from its own classifier and logits (zero_shot_classifier, run_classification)")


def peer_classification(model: dict, loader: DataLoader, names: list[str], templates: list[str]) -> dict[str, Any]:
    """CLIP_benchmark's zeroshot_classification.evaluate(); where it fails on numpy >= 2.4 (NUMPY_ISSUE), the same
    metrics from its own classifier and logits: acc1 and acc5 the share of items whose label is among the k highest
    logits (acc5 nan under 5 classes, as evaluate() has it), mean_per_class_recall sklearn's balanced accuracy of the
    argmax, as evaluate() computes it."""
    from clip_benchmark.metrics import zeroshot_classification  # lazy: an optional peer package

    with torch.no_grad():
        try:
            return {**zeroshot_classification.evaluate(model["model"], loader, model["tokenizer"], names, templates, "cpu",
                                                       amp=False), "via": "evaluate()"}
        except TypeError as e:
            if "0-dimensional" not in str(e):
                raise
        logits, target = peer_logits(model, loader, names, templates)
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hits = top == target[:, None]
    acc5 = float(hits.any(1).float().mean()) if logits.shape[1] >= 5 else float("nan")
    return {"acc1": float(hits[:, 0].float().mean()), "acc5": acc5,
            "mean_per_class_recall": float(balanced_accuracy_score(target.numpy(), logits.argmax(1).numpy())),
            "via": NUMPY_ISSUE}


def peer_logits(model: dict, loader: DataLoader, names: list[str], templates: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """((items, classes) logits, (items,) labels) from CLIP_benchmark's zero-shot classifier (per class, the mean of
    its templates' unit-norm text embeddings, renormalised) and its run_classification, in fp32."""
    from clip_benchmark.metrics import zeroshot_classification  # lazy: an optional peer package

    with torch.no_grad():
        classifier = zeroshot_classification.zero_shot_classifier(model["model"], model["tokenizer"], names, templates,
                                                                  "cpu", amp=False)
        return zeroshot_classification.run_classification(model["model"], classifier, loader, "cpu", amp=False)


def peer_setup(folder: Path, data: Path, batch_size: int) -> tuple[dict, dict]:
    clip = AutoModel.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    model = {"model": PeerCLIP(clip), "tokenizer": peer_tokenizer(tokenizer, clip.config.text_config.max_position_embeddings)}
    return model, loaders_of(data, processor, batch_size)


def open_clip_setup(name: str):
    """A peer_setup for an open_clip model (an open_clip model name, or `local-dir:FOLDER`), loaded by CLIP_benchmark's
    own open_clip loader: the model, its evaluation transform and its tokenizer, as `clip_benchmark eval` has them."""

    def setup(folder: Path, data: Path, batch_size: int) -> tuple[dict, dict]:
        from clip_benchmark.models import load_clip  # lazy: an optional peer package (needs open_clip)

        model, transform, tokenizer = load_clip("open_clip", name, None, None, "cpu")
        return {"model": model.eval(), "tokenizer": tokenizer}, loaders_of(data, transform, batch_size)

    return setup


# ---------------------------------------------------------------------------------------------- the table
PAIRS = [("classification/top1", "classification/acc1"), ("classification/top5", "classification/acc5"),
         ("classification/mean_per_class_recall", "classification/mean_per_class_recall"),
         *[(f"retrieval/t2v_R@{k}", f"retrieval/image_retrieval_recall@{k}") for k in RECALL_K],
         *[(f"retrieval/v2t_R@{k}", f"retrieval/text_retrieval_recall@{k}") for k in RECALL_K]]


def compare(suite: dict[str, float], peer: dict[str, Any], tolerance: float = 1e-4) -> list[dict]:
    """One row per compared pair: both names, both values in percent, and whether they agree."""
    rows = []
    for ours, theirs in PAIRS:
        a, b = suite.get(ours), peer.get(theirs)
        b = None if b is None or (isinstance(b, float) and math.isnan(b)) else 100 * b
        rows.append({"suite": ours, "peer": theirs, "suite_value": a, "peer_value": b,
                     "equal": a is not None and b is not None and abs(a - b) <= tolerance})
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n| suite | CLIP_benchmark | suite value | CLIP_benchmark value | equal |\n|---|---|---:|---:|---|")
    for r in rows:
        values = ["" if v is None else f"{v:.4f}" for v in (r["suite_value"], r["peer_value"])]
        print(f"| {r['suite']} | {r['peer']} | {values[0]} | {values[1]} | {'yes' if r['equal'] else 'NO'} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.clip_benchmark_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="a transformers CLIP folder (default: a tiny random CLIP written here)")
    p.add_argument("--data", type=Path, help="a dataset folder in the layout above (default: one written here)")
    p.add_argument("--out", type=Path, help="where the suite's records go (default: a temporary folder)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="percentage points two values may differ by")
    args = p.parse_args(argv)
    try:
        from clip_benchmark.metrics import zeroshot_classification  # noqa: F401  # lazy: an optional peer package
    except ImportError as e:
        print(f"error: {PACKAGE} is not importable ({e}); install it without its dependencies:\n"
              f"  pip install --no-deps --target .peers/clip_benchmark {PACKAGE}==1.6.2\n"
              f"  PYTHONPATH=.peers/clip_benchmark python -m bench.tools.clip_benchmark_check", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="clip_benchmark_check_") as tmp:
        work = Path(tmp)
        data = args.data or write_dataset(work / "data")
        folder = args.model or tiny_clip(work / "clip", data)
        out = args.out or work / "runs"
        try:
            peer_version = version(PACKAGE)
        except PackageNotFoundError:
            peer_version = "unknown"
        print(f"model {folder}; data {data}; {PACKAGE} {peer_version}, torch {torch.__version__}, numpy {np.__version__}")
        peer = peer_metrics(folder, data)
        print(f"CLIP_benchmark classification via {peer['classification/via']}")
        ok = True
        for ensemble in ("embeddings", "scores"):
            rows = compare(suite_metrics(suite_run(folder, data, out / ensemble, ensemble)), peer, args.tolerance)
            print_table(f"eval.prompt_ensemble={ensemble}" + (" (CLIP_benchmark's classifier)" if ensemble == "embeddings"
                                                              else " (the suite's default: not CLIP_benchmark's)"), rows)
            if ensemble == "embeddings":
                ok = all(r["equal"] for r in rows if r["peer_value"] is not None)
    print("\nagree" if ok else "\nDISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
