"""Bundled plugin: Triton GPU kernels for paged attention over mixed chunked-prefill + decode steps.

Registers the attention backend "triton", which the torch model backend picks by itself on CUDA
(`attention_backend="auto"`). Without a GPU the kernels run in Triton's interpreter when
`TRITON_INTERPRET=1` is set before the first import (tests do this at tiny sizes). Registered by
module path; triton and torch are imported only when the backend is built.
"""

from .hooks import sarathi_register_attention_backends

__all__ = ["sarathi_register_attention_backends"]
