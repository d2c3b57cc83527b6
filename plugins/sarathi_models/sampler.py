"""The sampler: logits of the sampling positions -> one token per request, plus logprobs if asked.

Runs on the model's device right after the forward, vectorised over the rows; the only host transfer
is the final one (token ids and logprobs to Python ints and floats).

Order of operations (vLLM's): a structured-output row's grammar mask (tokens outside it get -inf),
penalties, then greedy rows take the argmax; the other rows divide by
their temperature, drop tokens below `min_p` x the top probability, keep the `top_k` best, keep the
smallest set whose probability reaches `top_p`, and draw by inverse CDF. Logprobs are of the raw
model output (before penalties and temperature), as vLLM returns by default.

Determinism: a request with a seed draws its uniform from a hash of (seed, position of the token being
sampled), not from a stream. The draw therefore does not depend on what else is in the batch, nor on how
many steps ran before: a request preempted and recomputed samples the same tokens. Requests without a
seed draw from one stream seeded with `EngineConfig.seed`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sarathi_sdk import DecodeSlot, PrefillChunk, SamplingParams, TokenLogprobs

from .cpu_ops import kernels
from .penalties import apply_penalties

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class SamplerOutput:
    token_ids: list[int]
    logprobs: list[TokenLogprobs | None]
    """Per row: None unless the row's request asked for logprobs."""


class Sampler:
    """Samples one token per row of logits; see the module docstring."""

    def __init__(self, seed: int = 0) -> None:
        self._unseeded = random.Random(seed)

    def __call__(self, logits: torch.Tensor, rows: Sequence[PrefillChunk | DecodeSlot]) -> SamplerOutput:
        """logits [S, V] fp32 for the S `rows` (last prefill chunks and decodes) -> tokens."""
        params = [row.sampling_params for row in rows]
        device = logits.device
        raw = logits
        if any(p.logprobs is not None for p in params) and any(row.allowed_tokens is not None for row in rows):
            logits = logits.clone()  # [S, V]: logprobs are of the raw logits, the mask goes on a copy
        logits = apply_penalties(apply_allowed_tokens(logits, rows), rows)
        tokens = greedy_tokens(logits)  # [S]
        sampled = [i for i, p in enumerate(params) if not p.is_greedy]
        if sampled:
            index = torch.tensor(sampled, device=device)  # [R]
            uniforms = [self._uniform(params[i], rows[i]) for i in sampled]
            tokens[index] = _draw(logits[index], [params[i] for i in sampled], uniforms)
        wanted = [i for i, p in enumerate(params) if p.logprobs is not None]
        if not wanted:
            return SamplerOutput(tokens.tolist(), [None] * len(rows))
        return _with_logprobs(raw, tokens, wanted, [params[i].logprobs or 0 for i in wanted])

    def _uniform(self, params: SamplingParams, row: PrefillChunk | DecodeSlot) -> float:
        """A uniform in [0, 1) for this row: a hash of (seed, position) when seeded."""
        if params.seed is None:
            return self._unseeded.random()
        position = row.position + 1 if isinstance(row, DecodeSlot) else row.start_pos + len(row.token_ids)
        return seeded_uniform(params.seed, position)


def apply_allowed_tokens(logits: torch.Tensor, rows: Sequence[PrefillChunk | DecodeSlot]) -> torch.Tensor:
    """logits [S, V], in place: -inf for every token a row's grammar bitmask (`allowed_tokens`: int32
    words, bit j of word w for token 32 w + j) does not allow; tokens past the mask's words are not
    allowed; rows without a mask are left as they are. On the CPU kernels' `mask_disallowed_` where
    they built (0.26 ms for 16 rows of 49,152 tokens in a decode step, where unpacking the bits and a
    masked fill in torch took 2.5-4.4 ms), else in torch."""
    masked = [i for i, row in enumerate(rows) if row.allowed_tokens is not None]
    if not masked:
        return logits
    words = [torch.from_numpy(np.asarray(rows[i].allowed_tokens, dtype=np.int32)) for i in masked]  # [W] each
    fused = kernels()
    if fused is not None and logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.is_contiguous():
        fused.mask_disallowed_(logits, masked, words)
        return logits
    stacked = torch.stack(words)  # [M, W]
    bits = torch.arange(32, dtype=torch.int32)  # [32]
    allowed = ((stacked[:, :, None] >> bits) & 1).bool().reshape(len(masked), -1).to(logits.device)  # [M, 32 W]
    vocab = logits.shape[1]
    allowed = allowed[:, :vocab] if allowed.shape[1] >= vocab else torch.nn.functional.pad(allowed, (0, vocab - allowed.shape[1]))
    index = torch.tensor(masked, device=logits.device)  # [M]
    logits[index] = logits[index].masked_fill(~allowed, float("-inf"))
    return logits


def greedy_tokens(logits: torch.Tensor) -> torch.Tensor:
    """logits [S, V] -> [S] int64, each row's argmax; on the CPU kernels' `argmax_rows` where they
    built (torch's CPU argmax took 330 us for 16 rows of SmolLM2's 49152 logits), the same indices."""
    fused = kernels()
    if fused is not None and logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.is_contiguous():
        return fused.argmax_rows(logits)  # type: ignore[no-any-return]
    return logits.argmax(dim=-1)


def seeded_uniform(seed: int, position: int) -> float:
    """A uniform in [0, 1) that depends only on (seed, position): splitmix64 of both, top 53 bits."""
    x = _splitmix64(_splitmix64(seed & _MASK64) ^ position)
    return (x >> 11) / float(1 << 53)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _draw(logits: torch.Tensor, params: Sequence[SamplingParams], uniforms: Sequence[float]) -> torch.Tensor:
    """Temperature, min-p, top-k, top-p, then inverse-CDF sampling: logits [R, V] -> tokens [R]."""
    device, vocab = logits.device, logits.shape[1]
    temperature = torch.tensor([p.temperature for p in params], device=device)[:, None]  # [R, 1]
    logits = logits / temperature  # [R, V]
    if any(p.min_p > 0 for p in params):
        min_p = torch.tensor([p.min_p for p in params], device=device)[:, None]  # [R, 1]
        probs = torch.softmax(logits, dim=-1)  # [R, V]
        logits = logits.masked_fill(probs < min_p * probs.amax(dim=-1, keepdim=True), float("-inf"))
    if any(p.top_k != -1 or p.top_p < 1 for p in params):
        top_k = torch.tensor([vocab if p.top_k == -1 else min(p.top_k, vocab) for p in params], device=device)
        top_p = torch.tensor([p.top_p for p in params], device=device)
        logits = _top_k_top_p(logits, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)  # [R, V]
    cdf = probs.cumsum(dim=-1)  # [R, V]
    targets = torch.tensor(uniforms, dtype=cdf.dtype, device=device)[:, None] * cdf[:, -1:]  # [R, 1]
    tokens = torch.searchsorted(cdf, targets, right=True).squeeze(1)  # [R]
    # A uniform rounded up to 1.0 in fp32 lands past the end: take the last token that can be drawn.
    last_allowed = (probs > 0).cumsum(dim=-1).argmax(dim=-1)  # [R]
    return torch.minimum(tokens, last_allowed)


def _top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's `top_k` [R] best tokens, then the fewest whose probability reaches `top_p` [R]."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # [R, V] each
    rank = torch.arange(logits.shape[1], device=logits.device)[None, :]  # [1, V]
    sorted_logits = sorted_logits.masked_fill(rank >= top_k[:, None], float("-inf"))
    probs = torch.softmax(sorted_logits, dim=-1)  # [R, V]
    mass_before = probs.cumsum(dim=-1) - probs  # [R, V]
    drop = (mass_before >= top_p[:, None]) & (top_p[:, None] < 1)  # [R, V]; rank 0 is always kept
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(1, order, sorted_logits)  # [R, V]


def _with_logprobs(
    raw: torch.Tensor, tokens: torch.Tensor, wanted: list[int], top_n: list[int]
) -> SamplerOutput:
    """Token ids for every row and TokenLogprobs for the `wanted` rows, in one host transfer."""
    index = torch.tensor(wanted, device=raw.device)  # [W]
    logprobs = torch.log_softmax(raw[index], dim=-1)  # [W, V]
    chosen = logprobs.gather(1, tokens[index][:, None]).squeeze(1)  # [W]
    top_values, top_ids = logprobs.topk(max(top_n), dim=-1)  # [W, n]
    token_list, chosen_list = tokens.tolist(), chosen.tolist()
    top_values_list, top_ids_list = top_values.tolist(), top_ids.tolist()
    out: list[TokenLogprobs | None] = [None] * len(token_list)
    for j, i in enumerate(wanted):
        top = tuple(zip(top_ids_list[j][: top_n[j]], top_values_list[j][: top_n[j]]))
        out[i] = TokenLogprobs(token_id=token_list[i], logprob=chosen_list[j], top=top)
    return SamplerOutput(token_list, out)
