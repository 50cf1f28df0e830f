"""The tiny preset's tokenizer: one word-level token per word of the shapes world's vocabulary.

It is written once with save_pretrained into a cache folder and read back with
AutoTokenizer.from_pretrained, the same call that loads Llama's or Gemma's tokenizer at paper scale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from bench.data.config import ShapesConfig
from bench.data.shapes import ShapesWorld
from bench.data.text import vocabulary

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


def _save_once(fast, path: Path) -> Path:
    """Save a tokenizer into `path` whole: into a temporary folder first, then renamed."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    fast.save_pretrained(tmp)
    try:
        tmp.rename(path)  # atomic: a reader sees no folder or a complete one
    except OSError:  # another process won the race with identical content
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build_shapes_tokenizer(out_dir: Path) -> Path:
    """Write a PreTrainedTokenizerFast over the world's words to out_dir (idempotent)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = vocabulary()
    digest = hashlib.sha256(" ".join(words).encode()).hexdigest()[:10]
    path = out_dir / f"shapes-words-{digest}"
    if (path / "tokenizer.json").is_file():
        return path
    vocab = {tok: i for i, tok in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<bos>", eos_token="<eos>")
    return _save_once(fast, path)


# ---------------------------------------------------------------- paper-class tokenizers, trained offline
# The paper_micro preset (experiments/base/paper_micro.yaml) runs the paper's tokenizer classes without the
# hub: a byte-level BPE saved as Llama 3.2's PreTrainedTokenizerFast (its tokenizer_config names that class,
# with <|begin_of_text|> / <|end_of_text|> and no pad token), and a BPE with byte fallback over "▁"-joined
# words saved as EmbeddingGemma's GemmaTokenizerFast. Both are trained on the shapes world's texts, so they
# split its words into a few pieces as the real ones do, and are written once into the cache.
TRAIN_SCENES = 256  # train scenes whose reference captions, beside the vocabulary, train the BPEs


def world_texts() -> list[str]:
    """The texts the micro tokenizers learn their merges from: the world's vocabulary and captions."""
    world = ShapesWorld(ShapesConfig())
    texts = [" ".join(vocabulary())]
    for i in range(TRAIN_SCENES):
        texts.extend(world.references("train", i))
    return texts


def _digest(texts: list[str], vocab_size: int) -> str:
    return hashlib.sha256(f"{vocab_size}\n".encode() + "\n".join(texts).encode()).hexdigest()[:10]


def build_llama_bpe_tokenizer(out_dir: Path, vocab_size: int = 384) -> Path:
    """Llama 3.2's tokenizer layout at a small vocabulary: byte-level BPE, BOS prepended (idempotent)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = world_texts()
    path = out_dir / f"llama-bpe-{_digest(texts, vocab_size)}"
    if (path / "tokenizer.json").is_file():
        return path
    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[bos, eos],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)
    return _save_once(fast, path)


def build_gemma_bpe_tokenizer(out_dir: Path, vocab_size: int = 384) -> Path:
    """EmbeddingGemma's tokenizer class (GemmaTokenizerFast) over a BPE learnt from the world's texts
    (idempotent): Gemma's own construction from a vocabulary and merges, so its normaliser, byte fallback
    and BOS/EOS handling are the class's, not ours."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizerFast

    texts = world_texts()
    path = out_dir / f"gemma-bpe-{_digest(texts, vocab_size)}"
    if (path / "tokenizer.json").is_file():
        return path
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # Gemma's ids 0-4
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.normalizer = normalizers.Replace(" ", "▁")
    raw.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]  # byte fallback pieces, as Gemma's vocabulary has them
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + len(bytes_), special_tokens=specials + bytes_,
                                  show_progress=False)
    raw.train_from_iterator(texts, trainer)
    state = json.loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    fast = GemmaTokenizerFast(vocab=state["vocab"], merges=merges, add_bos_token=True)
    return _save_once(fast, path)
