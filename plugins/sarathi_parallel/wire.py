"""The fixed tensor encoding of what crosses between pipeline processes: never pickle.

Every message is a few tensors sent point-to-point, in this order, on one tag:

- a header, int64 [8]: `kind, step_id, a, b, c, d, hidden_size, dtype_code` (the meaning of a..d
  depends on the kind, see below);
- for a step (`STEP`, previous stage -> next): `a` prefills P, `b` decodes N, `c` tokens T, `d` the
  longest block table B; then the batch as one int64 vector (`encode_batch`), the per-stage busy
  seconds so far as float64 [num_stages], and the hidden states [T, H] in the model's dtype;
- for a result (`RESULT`, last stage -> stage 0): `a` sampling rows S; then the busy seconds
  float64 [num_stages] and the sampling rows' hidden states [S, H];
- for setup (`CONFIG`, `SPEC`, `START`, `READY`): `a` the byte length of a UTF-8 JSON document sent
  as uint8 [a] (plain fields: numbers, strings, lists; parsed with `json`, never unpickled);
- `STOP` (stage 0 -> 1 -> ... -> last -> stage 0): nothing follows.

A stage rebuilds the `ScheduledBatch` from the ints with placeholder request ids and default sampling
parameters: the layers need positions, block tables and lengths, never what a request asked for.

Imports torch and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from sarathi_sdk import DecodeSlot, PrefillChunk, SamplingParams, ScheduledBatch

STEP, RESULT, STOP, CONFIG, SPEC, START, READY = 1, 2, 3, 4, 5, 6, 7
FORWARD_TAG, RETURN_TAG, CONTROL_TAG = 11, 12, 13
"""Forward: stage i -> i + 1 (steps, STOP); return: last stage -> 0 (results, STOP); control: setup
between stage 0 and each stage."""
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_DEFAULT_PARAMS = SamplingParams()


def header(kind: int, step_id: int = 0, a: int = 0, b: int = 0, c: int = 0, d: int = 0,
           hidden: torch.Tensor | None = None) -> torch.Tensor:
    """int64 [8]; `hidden` [rows, H] fills the hidden size and dtype code."""
    hidden_size = 0 if hidden is None else hidden.shape[1]
    dtype_code = 0 if hidden is None else DTYPES.index(hidden.dtype)
    return torch.tensor([kind, step_id, a, b, c, d, hidden_size, dtype_code], dtype=torch.int64)  # [8]


def hidden_buffer(head: torch.Tensor, rows: int, device: torch.device) -> torch.Tensor:
    """An empty [rows, H] tensor of the dtype the header names, to receive hidden states into."""
    return torch.empty((rows, int(head[6])), dtype=DTYPES[int(head[7])], device=device)  # [rows, H]


def encode_batch(batch: ScheduledBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(header int64 [8], body int64 [4P + 3N + (P + N) * B + T - N]) of a STEP: per prefill
    start_pos, length, is_last_chunk, table length; per decode token id, position, table length; the
    block tables [P + N, B] padded with 0; the prefill token ids. The header's hidden size and dtype
    are filled by `with_hidden`."""
    prefills, decodes = batch.prefills, batch.decodes
    tables = [c.block_table for c in prefills] + [d.block_table for d in decodes]
    width = max((len(t) for t in tables), default=0)
    ints: list[int] = []
    for c in prefills:
        ints += (c.start_pos, len(c.token_ids), int(c.is_last_chunk), len(c.block_table))
    for d in decodes:
        ints += (d.token_id, d.position, len(d.block_table))
    for table in tables:
        ints += table
        ints += (0,) * (width - len(table))
    for c in prefills:
        ints += c.token_ids
    head = header(STEP, batch.step_id, len(prefills), len(decodes), batch.num_tokens, width)  # [8]
    return head, torch.tensor(ints, dtype=torch.int64)  # [4P + 3N + (P + N) * B + T - N]


def with_hidden(head: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """The header [8] with the hidden size and dtype code of `hidden` [rows, H]."""
    head = head.clone()  # [8]
    head[6], head[7] = hidden.shape[1], DTYPES.index(hidden.dtype)
    return head


def body_length(head: torch.Tensor) -> int:
    """Length of the int64 body a STEP header announces (the prefill token count is inside the body,
    so it is sent as T - N: every decode is one token)."""
    p, n, t, width = (int(x) for x in head[2:6])
    return 4 * p + 3 * n + (p + n) * width + (t - n)


def decode_batch(head: torch.Tensor, body: torch.Tensor) -> ScheduledBatch:
    """The `ScheduledBatch` of a STEP (header [8], body from `encode_batch`), request ids "p0", "d0", ..."""
    p, n, _t, width = (int(x) for x in head[2:6])
    ints = body.tolist()
    pre = [ints[4 * i : 4 * i + 4] for i in range(p)]
    at = 4 * p
    dec = [ints[at + 3 * i : at + 3 * i + 3] for i in range(n)]
    at += 3 * n
    lengths = [row[3] for row in pre] + [row[2] for row in dec]
    tables = [tuple(ints[at + i * width : at + i * width + lengths[i]]) for i in range(p + n)]
    at += (p + n) * width
    chunks = []
    for i, (start, length, is_last, _) in enumerate(pre):
        chunks.append(PrefillChunk(f"p{i}", tuple(ints[at : at + length]), start, tables[i], bool(is_last),
                                   _DEFAULT_PARAMS))
        at += length
    slots = tuple(DecodeSlot(f"d{i}", token, position, tables[p + i], _DEFAULT_PARAMS)
                  for i, (token, position, _) in enumerate(dec))
    return ScheduledBatch(step_id=int(head[1]), prefills=tuple(chunks), decodes=slots)


def encode_json(kind: int, document: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(header int64 [8], uint8 [nbytes]) of a setup message."""
    data = json.dumps(document).encode("utf-8")
    payload = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    return header(kind, a=len(data)), payload  # [8], [nbytes]


def decode_json(payload: torch.Tensor) -> dict[str, Any]:
    """uint8 [nbytes] -> the JSON document."""
    document = json.loads(bytes(payload.tolist()).decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("a setup message must be a JSON object")
    return document
