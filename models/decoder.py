"""The Y-decoder: a predicted embedding -> text.

The paper uses one at inference but gives neither its architecture nor its recipe. Ours, chosen to
be small and to need nothing but the text side of a trained VL-JEPA:

- a small Llama decoder (same transformers class as the predictor, `decoder.layers` x `decoder.hidden`)
  over the LM tokenizer;
- conditioned on the unit-normalised embedding through `prefix_tokens` prefix vectors (one linear
  map D -> prefix_tokens x hidden), then the text, then EOS; cross-entropy on the text and EOS;
- trained (`decoder.train_on`) on *Y-encoded target texts* (text -> Y-encoder -> head -> decoder -> the
  same text), on the model's own *predictions* for training clips (clip -> predictor -> decoder -> each of
  the clip's references: the inputs it decodes at evaluation), or on both; each input toward its own text,
  or (`decoder.decode_to: first_reference`) toward its clip's first reference, one wording per clip; with
  Gaussian noise of relative norm `decoder.noise` on the unit embedding, so that it tolerates the gap
  between its inputs and the evaluation's;
- decoded greedily with the KV cache.

It is trained after the VL-JEPA run it serves (the embedding space must be final), and saved as a
self-contained folder (config.json, model.safetensors, the tokenizer) that model.decoder.checkpoint
names.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

from models.config import DecoderConfig
from models.encoders import load_tokenizer
from models.lm import greedy_decode
from models.protocol import DecoderData, Decoding


class YDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, embed_dim: int, tokenizer_source: str, seed: int = 0):
        super().__init__()
        self.cfg, self.embed_dim = cfg, embed_dim
        self.tokenizer = load_tokenizer(tokenizer_source, "")
        config = AutoConfig.for_model("llama", vocab_size=len(self.tokenizer), hidden_size=cfg.hidden,
                                      intermediate_size=4 * cfg.hidden, num_hidden_layers=cfg.layers,
                                      num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                                      max_position_embeddings=cfg.prefix_tokens + cfg.max_tokens + 8,
                                      tie_word_embeddings=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.lm = AutoModelForCausalLM.from_config(config)
            self.prefix = nn.Linear(embed_dim, cfg.prefix_tokens * cfg.hidden)

    def _prefix(self, emb: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        e = F.normalize(emb.float(), dim=-1)
        if noise:
            e = F.normalize(e + noise * torch.randn_like(e) / e.shape[-1] ** 0.5, dim=-1)
        return self.prefix(e.to(self.prefix.weight.dtype)).view(len(e), self.cfg.prefix_tokens, self.cfg.hidden)

    def loss(self, emb: torch.Tensor, texts: list[str]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer([t + self.tokenizer.eos_token for t in texts], padding=True, truncation=True,
                             max_length=self.cfg.max_tokens, add_special_tokens=False, return_tensors="pt")
        ids, tmask = tok["input_ids"].to(emb.device), tok["attention_mask"].to(emb.device)
        prefix = self._prefix(emb, self.cfg.noise if self.training else 0.0)
        x = torch.cat([prefix, self.lm.model.embed_tokens(ids)], 1)
        keep = torch.cat([torch.ones(prefix.shape[:2], dtype=tmask.dtype, device=emb.device), tmask], 1)
        h = self.lm.model(inputs_embeds=x, attention_mask=keep).last_hidden_state
        P = prefix.shape[1]
        logits = self.lm.lm_head(h[:, P - 1:-1])  # position P-1+i predicts text token i
        labels = ids.masked_fill(tmask == 0, -100)
        return {"loss": F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)}

    @torch.no_grad()
    def generate(self, emb: torch.Tensor, max_tokens: int | None = None) -> list[str]:
        prefix = self._prefix(emb)
        keep = torch.ones(prefix.shape[:2], dtype=torch.long, device=emb.device)
        rows = greedy_decode(self.lm, prefix, keep, self.tokenizer.eos_token_id, max_tokens or self.cfg.max_tokens)
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

    def fit(self, embeddings: torch.Tensor, texts: list[str], steps: int, batch: int = 64, lr: float = 1e-3,
            seed: int = 0, log=None) -> list[float]:
        """Train on (embedding, text) pairs for a number of steps; returns the loss of each step. The
        batches and the embedding noise come from `seed` alone: the same inputs give the same decoder
        whatever the caller's random state (an on-demand evaluation reproduces the training run's)."""
        cuda = [embeddings.device.index or 0] if embeddings.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            return self._fit(embeddings, texts, steps, batch, lr, torch.Generator().manual_seed(seed), log)

    def _fit(self, embeddings: torch.Tensor, texts: list[str], steps: int, batch: int, lr: float,
             gen: torch.Generator, log) -> list[float]:
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.01)
        self.train()
        losses = []
        for step in range(steps):
            idx = torch.randint(len(texts), (min(batch, len(texts)),), generator=gen)
            out = self.loss(embeddings[idx], [texts[i] for i in idx.tolist()])
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.parameters(), 1.0)
            opt.step()
            losses.append(out["loss"].item())
            if log and (step % 100 == 0 or step == steps - 1):
                log(f"y-decoder step {step + 1}/{steps} loss {losses[-1]:.4f}")
        self.eval()
        return losses

    def save(self, directory: str | Path) -> Path:
        """Atomically write config.json, model.safetensors and the tokenizer into directory."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "config.json").write_text(json.dumps({"decoder": asdict(self.cfg), "embed_dim": self.embed_dim}))
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        state.pop("lm.lm_head.weight", None)  # tied to the token embeddings
        save_file(state, str(tmp / "model.safetensors"))
        self.tokenizer.save_pretrained(tmp)
        if directory.exists():
            import shutil

            shutil.rmtree(directory)
        tmp.rename(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> YDecoder:
        directory = Path(directory)
        meta = json.loads((directory / "config.json").read_text())
        dec = cls(DecoderConfig(**meta["decoder"]), meta["embed_dim"], str(directory))
        result = dec.load_state_dict(load_file(str(directory / "model.safetensors")), strict=False)
        missing = [k for k in result.missing_keys if k != "lm.lm_head.weight"]
        if missing or result.unexpected_keys:
            raise ValueError(f"{directory}: Y-decoder weights do not match its config "
                             f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
        dec.lm.tie_weights()
        return dec.eval()


def decoder_pairs(model, data: DecoderData, train_on: str,
                  decode_to: str = "each_reference") -> tuple[torch.Tensor, list[str]]:
    """(embeddings, texts) a Y-decoder learns from. "targets": each distinct training caption, Y-encoded;
    "predictions": the model's prediction for each training caption clip, once per reference of the clip
    (the inputs it will decode at evaluation, with the texts they should give); "both": the two together.
    decode_to="first_reference" pairs every input of a clip with the clip's first reference instead: each
    reference of the clip Y-encoded (targets) and the clip's prediction once (predictions)."""
    first = decode_to == "first_reference"
    if (train_on != "targets" or first) and data.clips is None:
        raise ValueError(f"model.decoder.train_on={train_on}, decode_to={decode_to} needs the training data's caption "
                         "clips, and this evaluation has none (DecoderData.clips); use train_on=targets with "
                         "decode_to=each_reference")
    encoded: list[tuple[torch.Tensor, list[str]]] = []
    predicted: list[tuple[torch.Tensor, list[str]]] = []
    with torch.no_grad():
        if train_on in ("targets", "both") and not first:
            given = data.texts()
            if not given:
                raise ValueError("the training data has no caption texts to train a Y-decoder on; set model.decoder.checkpoint")
            encoded += [(model.encode_targets(given[s:s + 256]).float(), given[s:s + 256])
                        for s in range(0, len(given), 256)]
        if train_on != "targets" or first:
            for batch, refs in data.clips():
                if first and train_on in ("targets", "both"):  # every reference -> the clip's first
                    flat = [t for r in refs for t in r]
                    encoded.append((model.encode_targets(flat).float(), [r[0] for r in refs for _ in r]))
                if train_on in ("predictions", "both"):
                    emb = model.embed(batch).float()
                    if first:
                        predicted.append((emb, [r[0] for r in refs]))
                    else:
                        counts = torch.tensor([len(r) for r in refs], device=emb.device)
                        predicted.append((emb.repeat_interleave(counts, 0), [t for r in refs for t in r]))
    pairs = encoded + predicted
    texts = [t for _, ts in pairs for t in ts]
    if not texts:
        raise ValueError(f"model.decoder.train_on={train_on}: the training data gave nothing to train a Y-decoder on")
    return torch.cat([e for e, _ in pairs]), texts


@contextlib.contextmanager
def y_decoding(model, data: DecoderData, steps: int, seed: int, log=None) -> Iterator[Decoding]:
    """A model's `decoding` hook (models/protocol.py) for models that caption through a Y-decoder: one
    loaded from model.decoder.checkpoint, or else one trained now, for the embedding space the model has
    *now*, on the pairs model.cfg.decoder.train_on names (decoder_pairs), attached as model.decoder for the
    with-block and detached after it (the next grid point's space is another). Uses model.encode_targets,
    model.embed, model.decoder, and model.cfg's decoder, embed_dim and lm.tokenizer."""
    if model.decoder is not None:
        yield Decoding(model.decoder.generate, model.encode_targets)
        return
    cfg = model.cfg
    emb, texts = decoder_pairs(model, data, cfg.decoder.train_on, cfg.decoder.decode_to)
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        decoder = YDecoder(cfg.decoder, cfg.embed_dim, cfg.lm.tokenizer, seed=seed)
        decoder.to(emb.device).fit(emb, texts, steps=steps, batch=64, lr=1e-3, seed=seed, log=log)
    model.decoder = decoder
    try:
        yield Decoding(decoder.generate, model.encode_targets)
    finally:
        model.decoder = None
