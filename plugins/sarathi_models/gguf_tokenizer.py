"""tokenizer.json and tokenizer_config.json of a converted GGUF, rebuilt from its metadata.

A GGUF stores the vocabulary (`tokenizer.ggml.tokens`, with a type per token), the BPE merges or the
sentencepiece scores, the special token ids and the chat template, but not the text-splitting rules:
those are named by `tokenizer.ggml.pre`, and llama.cpp keeps the regular expressions in its own code.
Two tokenizer kinds are rebuilt with the `tokenizers` library:

- `gpt2`: byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2); the pre-tokenizer is the one the original
  tokenizer.json of the named `pre` type has (GPT-2's regex, digits split one by one first for the
  StarCoder/SmolLM family, Llama 3's regex, Qwen2's: Llama 3's with single digits), as llama.cpp's
  regexes for that type say; an unknown `pre` is a `ConfigError` rather than a silent mis-split;
- `llama`: sentencepiece BPE with byte fallback (Llama 1/2, Mistral), in the layout transformers'
  Llama converter writes; merges are recovered from the scores (a sentencepiece piece's score is its
  merge priority).

Tokens the file marks CONTROL become special added tokens (skipped when decoding), USER_DEFINED ones
plain added tokens, so both are matched whole in text.

Imports tokenizers, the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from typing import Any

from sarathi_sdk import ConfigError

from .gguf_file import GGUFFile

NORMAL, CONTROL, USER_DEFINED = 1, 3, 4
"""llama.cpp's token types (`tokenizer.ggml.token_type`) that the rebuild treats specially."""
SPACE = "\u2581"

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PRE = ("qwen2", "deepseek-r1-qwen")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")
"""Qwen2's pre-tokenizer: Llama 3's expression with digits one by one (llama.cpp's QWEN2 type)."""
GPT2_PRE = ("default", "gpt2", "gpt-2", "mpt", "olmo", "jais")
DIGIT_PRE = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva")
"""llama.cpp splits digits one by one before applying GPT-2's regex for these."""
LLAMA3_PRE = ("llama3", "llama-bpe", "llama-v3", "smaug-bpe", "falcon3", "dbrx")
"""Llama 3's regex; its tokenizer also looks whole words up before merging (`ignore_merges`)."""


def build_tokenizer(file: GGUFFile) -> Any:
    """A `tokenizers.Tokenizer` equivalent to the one the GGUF was converted from."""
    kind = file.metadata.get("tokenizer.ggml.model")
    if kind == "gpt2":
        tokenizer = _byte_level(file)
    elif kind == "llama":
        tokenizer = _sentencepiece_bpe(file)
    else:
        raise ConfigError(f"{file.path.name}: cannot rebuild a {kind!r} tokenizer (supported: gpt2, llama)")
    _add_special_tokens(tokenizer, file)
    _set_bos_template(tokenizer, file)
    return tokenizer


def tokenizer_config(file: GGUFFile) -> dict[str, Any]:
    """The conventions that tokenizer.json cannot hold: special tokens by name, BOS, chat template."""
    tokens = file.metadata["tokenizer.ggml.tokens"]
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": adds_bos(file),
        "add_eos_token": bool(file.metadata.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
        "model_max_length": file.hparam("context_length", 2048),
    }
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        token_id = file.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if token_id is not None and 0 <= token_id < len(tokens):
            config[f"{name}_token"] = tokens[token_id]
    if template := file.metadata.get("tokenizer.chat_template"):
        config["chat_template"] = template
    return config


def adds_bos(file: GGUFFile) -> bool:
    """The file's flag; without one, sentencepiece vocabularies add BOS and byte-level ones do not,
    which is what transformers' GGUF loader assumes too."""
    flag = file.metadata.get("tokenizer.ggml.add_bos_token")
    return bool(flag) if flag is not None else file.metadata.get("tokenizer.ggml.model") == "llama"


def _byte_level(file: GGUFFile) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    pre = file.metadata.get("tokenizer.ggml.pre", "default")
    if pre in GPT2_PRE:
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    elif pre in DIGIT_PRE:
        steps = [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    elif pre in LLAMA3_PRE or pre in QWEN2_PRE:
        steps = [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT if pre in LLAMA3_PRE else QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    else:
        raise ConfigError(f"{file.path.name}: unknown byte-level pre-tokenizer {pre!r}")
    merges = [tuple(merge.split(" ", 1)) for merge in file.metadata.get("tokenizer.ggml.merges", [])]
    model = models.BPE(_vocab(file), merges, ignore_merges=pre in LLAMA3_PRE)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _sentencepiece_bpe(file: GGUFFile) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers

    tokens = file.metadata["tokenizer.ggml.tokens"]
    unk_id = file.metadata.get("tokenizer.ggml.unknown_token_id")
    model = models.BPE(
        _vocab(file),
        _merges_from_scores(file),
        unk_token=tokens[unk_id] if unk_id is not None else None,
        fuse_unk=True,
        byte_fallback=True,
    )
    tokenizer = Tokenizer(model)
    prefix_space = bool(file.metadata.get("tokenizer.ggml.add_space_prefix", True))
    steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix_space:
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    else:
        tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer


def _merges_from_scores(file: GGUFFile) -> list[tuple[str, str]]:
    """Sentencepiece BPE merges, best first: every split of a piece into two pieces of the vocabulary
    is a merge ranked by the score of the piece it makes (ties: shorter left side first)."""
    tokens = file.metadata["tokenizer.ggml.tokens"]
    scores = file.metadata.get("tokenizer.ggml.scores")
    types = file.metadata.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if scores is None:
        raise ConfigError(f"{file.path.name}: a sentencepiece vocabulary without scores cannot be rebuilt")
    ids = {token: index for index, token in reversed(list(enumerate(tokens)))}
    ranked = []
    for index, piece in enumerate(tokens):
        if types[index] not in (NORMAL, USER_DEFINED):
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                ranked.append((-scores[index], index, ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _vocab(file: GGUFFile) -> dict[str, int]:
    """Token -> id; a token listed twice keeps its first id, as llama.cpp's lookup does."""
    vocab: dict[str, int] = {}
    for index, token in enumerate(file.metadata["tokenizer.ggml.tokens"]):
        vocab.setdefault(token, index)
    return vocab


def _add_special_tokens(tokenizer: Any, file: GGUFFile) -> None:
    from tokenizers import AddedToken

    tokens = file.metadata["tokenizer.ggml.tokens"]
    types = file.metadata.get("tokenizer.ggml.token_type") or []
    special_ids = {file.metadata.get(f"tokenizer.ggml.{key}_token_id") for key in ("bos", "eos", "unknown")}
    special = [t for i, (t, kind) in enumerate(zip(tokens, types)) if kind == CONTROL or (i in special_ids)]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    user_defined = [t for t, kind in zip(tokens, types) if kind == USER_DEFINED]
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])


def _set_bos_template(tokenizer: Any, file: GGUFFile) -> None:
    """Encode adds BOS through the post-processor, so tokenizer.json alone behaves like the model."""
    from tokenizers import processors

    bos_id = file.metadata.get("tokenizer.ggml.bos_token_id")
    if adds_bos(file) and bos_id is not None:
        bos = file.metadata["tokenizer.ggml.tokens"][bos_id]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
