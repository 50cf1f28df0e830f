"""model.visual_scale: the projected visual tokens enter the LM at the norm of its own token embeddings
(text_norm), in both twins and both attention masks; the default leaves every committed run as it was."""

from __future__ import annotations

import pytest
import torch

from bench.config import load_run_config
from bench.data.loader import collate
from bench.data.shapes import TrainSamples
from bench.run.build import build_model
from tests.conftest import tiny_overrides


def _inputs_embeds(model, batch, lm) -> torch.Tensor:
    seen = {}

    def grab(module, args, kwargs):
        seen["x"] = kwargs["inputs_embeds"].detach()

    hook = lm.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model.loss(batch)
    finally:
        hook.remove()
    return seen["x"]


@pytest.mark.parametrize("name", ["vljepa", "vlm"])
@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_text_norm_puts_every_visual_token_at_the_text_embeddings_norm(name, attention):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(f"model.name={name}", f"model.attention={attention}",
                                                           "model.visual_scale=text_norm"))
    model = build_model(cfg, log=None)
    lm = model.predictor if name == "vljepa" else model.lm.model
    text = lm.embed_tokens.weight.detach().norm(dim=-1).mean()
    batch = collate([TrainSamples(cfg.data, cfg.seed)[i] for i in range(4)])
    assert not any(batch["query"])  # the caption stage: no query, so the visual tokens lead every row
    x = _inputs_embeds(model, batch, lm)
    n_vis = model.x_encoder.tokens(batch).shape[1]
    norms = x[:, :n_vis].norm(dim=-1)
    assert torch.allclose(norms, text.expand_as(norms), rtol=1e-4)

def test_the_default_changes_nothing_and_the_option_enters_the_run_id():
    base = load_run_config("base/tiny.yaml", tiny_overrides())
    assert base.run_id == load_run_config("base/tiny.yaml", tiny_overrides("model.visual_scale=none")).run_id
    assert base.run_id != load_run_config("base/tiny.yaml", tiny_overrides("model.visual_scale=text_norm")).run_id
    model = build_model(base, log=None)
    vis = torch.randn(2, 3, model.vis_proj.out_features)
    assert torch.equal(model.vis_scale(vis), vis)
