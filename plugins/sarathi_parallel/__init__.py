"""Bundled plugin: pipeline parallelism over torch.distributed (`Engine(pipeline_parallel_size=N)`).

The model's layers are split into N contiguous stages, one process per stage: the engine's process
runs stage 0 (embedding, first layers, LM head, sampler) beside the engine loop; stages 1 .. N-1 are
spawned on this machine, or started by torchrun across nodes (`worker`). Batches and hidden states
move point-to-point as tensors with a fixed encoding (`wire`): gloo on the CPU, NCCL for hidden
states on CUDA. See docs/parallel.md.

Registered by module path; importing it imports no torch.
"""

from .hooks import sarathi_make_backend

__all__ = ["sarathi_make_backend"]
