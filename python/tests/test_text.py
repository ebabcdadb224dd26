"""The shapes tokenizers: learnt the same way on every run, and whole words for the grammar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shapesworld.text import GPT2_VOCAB_SIZE, build_clip_tokenizer, build_gpt2_tokenizer, corpus

SENTENCE = "two red triangles on a white background"


def _digest_in_fresh_process(hash_seed: str) -> str:
    # A fresh interpreter per run, each with its own string hashing: run-to-run order
    # is what made two rebuilds number the same tokens differently.
    code = (
        "import hashlib, json; from shapesworld.text import _train_bpe; "
        "v, m = _train_bpe('</w>', [], 2000); "
        "print(hashlib.sha256(json.dumps([sorted(v.items()), m]).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_every_run_learns_the_same_merges_and_ids():
    assert len({_digest_in_fresh_process(seed) for seed in ("1", "2", "3")}) == 1


def test_clip_tokenizer_reads_each_grammar_word_as_one_token(tmp_path: Path):
    from transformers import CLIPTokenizer

    build_clip_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    ids = tokenizer(SENTENCE)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id == max(tokenizer.get_vocab().values())
    assert len(ids) == len(SENTENCE.split()) + 2
    for line in corpus():
        assert len(tokenizer(line)["input_ids"]) == len(line.split()) + 2, line


def test_gpt2_tokenizer_round_trips_the_grammar(tmp_path: Path):
    from transformers import GPT2Tokenizer

    build_gpt2_tokenizer(tmp_path)
    tokenizer = GPT2Tokenizer.from_pretrained(tmp_path)
    for line in corpus():
        ids = tokenizer(line)["input_ids"]
        assert tokenizer.decode(ids) == line
        assert len(ids) == len(line.split()), line
    assert tokenizer.pad_token == tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    # The pack declares the captioner's logits this wide (pack.INTERFACES).
    assert len(tokenizer) == GPT2_VOCAB_SIZE
