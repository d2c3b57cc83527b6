"""Repetition, presence and frequency penalties, vectorised over the rows that ask for them.

Semantics follow vLLM (and, for the repetition penalty, Hugging Face):
- repetition penalty p over every token seen in the prompt or the output: a positive logit is divided
  by p, a negative one multiplied by p;
- frequency penalty f and presence penalty r over output tokens only:
  `logit -= f * count(token) + r * (count(token) > 0)`.
The token history comes with the batch (`TokenHistory` on the chunk or decode); the engine attaches it
only to requests whose `SamplingParams.needs_output_history`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sarathi_sdk import DecodeSlot, PrefillChunk


def apply_penalties(logits: torch.Tensor, rows: Sequence[PrefillChunk | DecodeSlot]) -> torch.Tensor:
    """logits [S, V] -> penalised copy [S, V]; rows without penalties are unchanged."""
    picked = [i for i, row in enumerate(rows) if row.sampling_params.needs_output_history]
    if not picked:
        return logits
    device, vocab = logits.device, logits.shape[1]
    seen_rows, seen_tokens, out_rows, out_tokens = [], [], [], []
    for j, i in enumerate(picked):
        history = rows[i].history
        if history is None:
            raise ValueError(f"request {rows[i].request_id!r} asks for a penalty but its batch entry has no history")
        seen = np.unique(np.asarray(history.prompt_token_ids + history.output_token_ids, dtype=np.int64))
        seen_rows.append(np.full(len(seen), j, dtype=np.int64))
        seen_tokens.append(seen)
        out_rows.append(np.full(len(history.output_token_ids), j, dtype=np.int64))
        out_tokens.append(np.asarray(history.output_token_ids, dtype=np.int64))

    def index(rows_: list[np.ndarray], tokens: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.concatenate(rows_)).to(device), torch.from_numpy(np.concatenate(tokens)).to(device)

    n = len(picked)
    seen_mask = torch.zeros(n, vocab, dtype=torch.bool, device=device)  # [n, V]
    seen_mask[index(seen_rows, seen_tokens)] = True
    counts = torch.zeros(n, vocab, dtype=logits.dtype, device=device)  # [n, V]
    out_index = index(out_rows, out_tokens)
    counts.index_put_(out_index, torch.ones_like(out_index[0], dtype=logits.dtype), accumulate=True)

    params = [rows[i].sampling_params for i in picked]

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=logits.dtype, device=device)[:, None]  # [n, 1]

    repetition = column([p.repetition_penalty for p in params])
    frequency = column([p.frequency_penalty for p in params])
    presence = column([p.presence_penalty for p in params])
    picked_index = torch.tensor(picked, device=device)
    sub = logits[picked_index]  # [n, V]
    penalised = torch.where(sub > 0, sub / repetition, sub * repetition)  # [n, V]
    sub = torch.where(seen_mask, penalised, sub)
    sub = sub - frequency * counts - presence * (counts > 0).to(logits.dtype)
    out = logits.clone()
    out[picked_index] = sub
    return out
