"""The `hf` baseline: Hugging Face transformers `generate` in static batches, on the same weights and
the same requests as the engine.

This is how a model is served without an inference engine: when the previous batch is done, the
requests that have arrived (up to `max_num_seqs`, in arrival order) are left-padded into one batch and
generated together until the batch's longest output is done; a request that arrives while a batch
runs waits for it. Each token's time is taken when `generate` hands its step's tokens to the stopping
criteria, so TTFT and time between tokens are what a streaming client would see; a request ends with
its batch. `min_new_tokens` keeps every row going to its output length, as `ignore_eos` does in the
engine.

Needs `transformers` (the `bench` extra).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .records import RequestRecord
from .workloads import BenchRequest, bench_prompt


def _torch_dtype(dtype: str) -> Any:
    import torch

    return {"auto": torch.bfloat16, "bfloat16": torch.bfloat16, "float16": torch.float16,
            "float32": torch.float32}[dtype]


class HFBaseline:
    """A transformers model loaded once from the engine's checkpoint folder, served in static batches."""

    def __init__(self, folder: str, dtype: str = "auto", device: str = "cpu") -> None:
        try:
            import transformers
        except ImportError as exc:
            raise ConfigError('the hf baseline needs transformers: pip install "sarathi-sdk[bench]"') from exc
        self.device = device
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=_torch_dtype(dtype))
        # transformers types `PreTrainedModel.to` through a decorator whose signature loses the bound self
        self.model.to(device).eval()  # type: ignore[arg-type]
        self.vocab_size = self.model.config.vocab_size

    def serve(self, requests: Sequence[BenchRequest], arrivals: Sequence[float], max_num_seqs: int,
              salt: int = 0, progress: Any = None, shared_prefix_len: int = 0) -> list[RequestRecord]:
        """Serve every request in static batches; records on a clock whose zero is the call. Prompts
        are the engine's (`workloads.bench_prompt`); transformers caches no prefix across calls."""
        order = sorted(range(len(requests)), key=lambda i: arrivals[i])
        records: dict[int, RequestRecord] = {}
        t0 = time.perf_counter()
        while order:
            now = time.perf_counter() - t0
            if arrivals[order[0]] > now:
                time.sleep(arrivals[order[0]] - now)
                now = time.perf_counter() - t0
            batch = [i for i in order[:max_num_seqs] if arrivals[i] <= now]
            order = order[len(batch):]
            records |= self._batch(batch, requests, arrivals, t0, salt, shared_prefix_len)
            if progress is not None:
                progress.update(len(batch))
        return [records[i] for i in range(len(requests))]

    def _batch(self, batch: list[int], requests: Sequence[BenchRequest], arrivals: Sequence[float],
               t0: float, salt: int, shared_prefix_len: int) -> dict[int, RequestRecord]:
        import torch
        import transformers

        prompts = [bench_prompt(requests[i].prompt_len, salt, i, self.vocab_size, shared_prefix_len) for i in batch]
        width = max(map(len, prompts))
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)  # [B, P] left-padded with 0
        mask = torch.zeros(len(batch), width, dtype=torch.long)  # [B, P]
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        new_tokens = max(requests[i].output_len for i in batch)
        times: list[float] = []

        class _Clock(transformers.StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                times.append(time.perf_counter() - t0)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool)

        start = time.perf_counter() - t0
        with torch.inference_mode():
            self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0,
                stopping_criteria=transformers.StoppingCriteriaList([_Clock()]),
            )
        end = time.perf_counter() - t0
        return {
            i: RequestRecord(arrival=arrivals[i], scheduled=start, token_times=tuple(times[:requests[i].output_len]),
                             finished=end, prompt_len=requests[i].prompt_len)
            for i in batch
        }
