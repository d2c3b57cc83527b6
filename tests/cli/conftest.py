"""Runs the installed `sarathi` command in a subprocess, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gguf.smollm2 import converted_smollm2
from tests.tokenizers.spm import train_sentencepiece

SARATHI = Path(sys.executable).with_name("sarathi")
"""The console script pip installed beside this interpreter (`sarathi = "sarathi_sdk.cli:main"`)."""


def run_sarathi(*args: str, cache_dir: Path, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, SARATHI_CACHE_DIR=str(cache_dir))
    return subprocess.run(
        [str(SARATHI), *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_smollm2(tmp_path_factory)


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_sentencepiece(tmp_path_factory.mktemp("cli-sentencepiece"))
