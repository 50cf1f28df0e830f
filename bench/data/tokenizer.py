"""The tiny preset's tokenizer: one word-level token per word of the shapes world's vocabulary.

It is written once with save_pretrained into a cache folder and read back with
AutoTokenizer.from_pretrained, the same call that loads Llama's or Gemma's tokenizer at paper scale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from bench.data.text import vocabulary

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


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
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    fast.save_pretrained(tmp)
    try:
        tmp.rename(path)  # atomic: a reader sees no folder or a complete one
    except OSError:  # another process won the race with identical content
        shutil.rmtree(tmp, ignore_errors=True)
    return path
