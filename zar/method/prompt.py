"""CoOp-style prompt learner, as TPT uses it (docs/protocol.md §2).

Each class's text is the template with ``{ctx}`` replaced by the context words and ``{c}`` by
the class text: ``"{ctx} {c}."`` gives ``"a video of a {c}."``. It is tokenised per class;
the token embeddings of the context words are replaced by one shared, learnable
``(n_ctx, width)`` parameter, initialised to those raw token embeddings (no positional
embedding). With the context at its init the features equal
``encode_text(tokenize("a video of a {c}."))``. A template without ``{ctx}`` (e.g. ``"{c}"``,
the class name alone) has no context and cannot be tuned.

The text transformer runs only up to the last end-of-text token of the class prompts (for
160 class names, 15 of CLIP's 77 positions): under the causal attention mask the output at
an end-of-text token never depends on later positions, so the features are exactly those of
the full context (``truncate=False`` runs all of it, for comparison).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from zar.method.sections import check_template
from zar.model.backbone import tokenizer_of
from zar.core.splitfiles import class_text
from zar.core.errors import UserError


def _text_tower(model: nn.Module) -> SimpleNamespace:
    """The text-tower parts of an open_clip model, for ``CLIP`` and ``CustomTextCLIP`` alike."""
    t = getattr(model, "text", None)
    if t is not None:  # CustomTextCLIP: parts under model.text
        if getattr(t, "cls_emb", None) is not None:
            raise UserError("text towers with an appended class token (CoCa) are not supported")
        if not hasattr(t, "token_embedding"):
            raise UserError(f"text tower {type(t).__name__} has no token embedding (HF text towers are not supported)")
        return SimpleNamespace(
            token_embedding=t.token_embedding, positional_embedding=t.positional_embedding,
            transformer=t.transformer, ln_final=t.ln_final, text_projection=t.text_projection,
            attn_mask=t.attn_mask, pool_type=t.pool_type, eos_id=getattr(t, "eos_id", None),
            pad_id=getattr(t, "pad_id", 0), use_pad_mask=getattr(t, "use_pad_mask", False),
            context_length=t.context_length, owner=t,
        )
    return SimpleNamespace(
        token_embedding=model.token_embedding, positional_embedding=model.positional_embedding,
        transformer=model.transformer, ln_final=model.ln_final, text_projection=model.text_projection,
        attn_mask=model.attn_mask, pool_type=getattr(model, "text_pool_type", "argmax"),
        eos_id=getattr(model, "text_eos_id", None), pad_id=0, use_pad_mask=False,
        context_length=model.context_length, owner=model,
    )


def _pool(x: torch.Tensor, tokens: torch.Tensor, pool_type: str, eos_id: int | None) -> torch.Tensor:
    rows = torch.arange(x.shape[0], device=x.device)
    if pool_type == "argmax":
        return x[rows, tokens.argmax(dim=-1)]
    if pool_type == "eos":
        return x[rows, (tokens == eos_id).int().argmax(dim=-1)]
    if pool_type == "last":
        return x[:, -1]
    if pool_type == "first":
        return x[:, 0]
    raise UserError(f"text pooling {pool_type!r} is not supported")


def fill_template(template: str, ctx_init: str, text: str) -> str:
    before, after = template.split("{c}")
    return before.replace("{ctx}", ctx_init) + text + after


class PromptLearner(nn.Module):
    """Learnable shared context for all classes.

    ``forward()`` returns (K, D) L2-normalised text features; ``forward(ctx)`` with a batch of
    contexts ``(B, n_ctx, width)`` returns (B, K, D), each video's own prompt.
    """

    def __init__(self, model: nn.Module, class_texts: list[str], ctx_init: str = "a video of a",
                 template: str = "{ctx} {c}.", tokenizer=None, truncate: bool = True):
        super().__init__()

        if not class_texts:
            raise UserError("PromptLearner: no class names")
        why = check_template(template, tuned=False)
        if why:
            raise UserError(f"prompt template {template!r}: {why}")
        self._tower = _text_tower(model)
        tok = tokenizer or tokenizer_of(model)
        self.ctx_init = ctx_init
        self.template = template
        prompts = [fill_template(template, ctx_init, class_text(c)) for c in class_texts]
        ctx_len = self._tower.context_length
        n_ctx = 0
        if "{ctx}" in template:
            init_tokens = tok([ctx_init], context_length=ctx_len)[0]
            n_ctx = int((init_tokens != 0).sum().item()) - 2  # minus start and end tokens
            if n_ctx < 1:
                raise UserError(f"context init {ctx_init!r} has no tokens")
        tokens = tok(prompts, context_length=ctx_len)
        if hasattr(tok, "encode"):  # the tokenizer truncates silently: refuse instead
            for p in prompts:
                if len(tok.encode(p)) + 2 > ctx_len:
                    raise UserError(f"prompt {p!r} is longer than {ctx_len} tokens and would be truncated")
        if n_ctx and not torch.equal(tokens[:, 1:1 + n_ctx], init_tokens[1:1 + n_ctx].expand(len(prompts), -1)):
            raise UserError(f"the context {ctx_init!r} does not tokenise the same inside the prompts")
        self.length = self._used_length(tokens) if truncate else tokens.shape[1]
        tokens = tokens[:, :self.length]
        device = self._tower.token_embedding.weight.device
        tokens = tokens.to(device)
        with torch.no_grad():
            emb = self._tower.token_embedding(tokens).float()
        self.n_ctx = n_ctx
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("prefix", emb[:, :1].clone(), persistent=False)
        self.register_buffer("suffix", emb[:, 1 + n_ctx:].clone(), persistent=False)
        self.register_buffer("ctx_init_vectors", emb[0, 1:1 + n_ctx].clone(), persistent=False)
        self.ctx = nn.Parameter(self.ctx_init_vectors.clone())

    def _used_length(self, tokens: torch.Tensor) -> int:
        """Positions up to the last end-of-text token when truncation is exact, else all."""
        t = self._tower
        causal = t.attn_mask is not None and not t.use_pad_mask
        if not causal or t.pool_type not in ("argmax", "eos"):
            return tokens.shape[1]
        eos = tokens.argmax(dim=-1) if t.pool_type == "argmax" else (tokens == t.eos_id).int().argmax(dim=-1)
        return int(eos.max()) + 1

    def reset(self) -> None:
        """Put the context back to its initial vectors (in place: optimisers keep their reference)."""
        with torch.no_grad():
            self.ctx.copy_(self.ctx_init_vectors)

    def forward(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        t = self._tower
        cast = t.transformer.get_cast_dtype() if hasattr(t.transformer, "get_cast_dtype") else torch.float32
        k, n = self.tokens.shape
        if ctx is None:
            ctx, batch = self.ctx.unsqueeze(0), None
        else:
            batch = ctx.shape[0]
        b = ctx.shape[0]
        x = torch.cat([self.prefix.expand(b, k, -1, -1), ctx.unsqueeze(1).expand(b, k, -1, -1),
                       self.suffix.expand(b, k, -1, -1)], dim=2).reshape(b * k, n, -1).to(cast)
        x = x + t.positional_embedding[:n].to(cast)
        attn_mask = t.attn_mask
        if t.use_pad_mask:
            attn_mask = t.owner._embeds(self.tokens.repeat(b, 1))[1]
        elif attn_mask is not None:
            attn_mask = attn_mask[:n, :n]
        x = t.transformer(x, attn_mask=attn_mask)
        x = t.ln_final(x)
        x = _pool(x, self.tokens.repeat(b, 1), t.pool_type, t.eos_id)
        proj = t.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        x = F.normalize(x, dim=-1).reshape(b, k, -1)
        return x[0] if batch is None else x
