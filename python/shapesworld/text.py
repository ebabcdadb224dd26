"""Tokenizers of the shapes world, trained here on the grammar's sentences.

Both follow the real formats exactly, so the loaders of the real models load them:
- a CLIP tokenizer (byte-level BPE with `</w>` word ends, `<|startoftext|>` and
  `<|endoftext|>`), used by the CLIP model, the generator's text encoder and the
  detector's text tower;
- a GPT-2 tokenizer (byte-level BPE, `<|endoftext|>` as bos, eos and pad), used by
  the captioner's decoder.
Nothing comes from a hub: the merges are learnt from the grammar's own sentences.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from .world import BACKGROUNDS, CLASSES, COLOURS, PLURALS, all_specs

CLIP_MAX_LENGTH = 24
EXTRA_WORDS = "a an one two three four of the with photo image picture drawing object objects and on in background".split()


def corpus() -> list[str]:
    """Every sentence of the grammar, plus the bare words users type as queries."""
    words = list(CLASSES) + list(PLURALS.values()) + list(COLOURS) + list(BACKGROUNDS) + EXTRA_WORDS
    return [spec.caption for spec in all_specs()] + words + [f"a photo of a {c}" for c in CLASSES]


def _train_bpe(end_of_word_suffix: str, specials: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    suffix = {"end_of_word_suffix": end_of_word_suffix} if end_of_word_suffix else {}
    tok = Tokenizer(models.BPE(**suffix))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        **suffix,
        show_progress=False,
    )
    # Each sentence also with a leading space, so that GPT-2's `Ġword` forms
    # exist for a sentence's first word too.
    lines = corpus() + [" " + line for line in corpus()]
    tok.train_from_iterator(lines, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        tok.model.save(tmp)
        vocab: dict[str, int] = json.loads(Path(tmp, "vocab.json").read_text())
        merges = [tuple(line.split(" ")) for line in Path(tmp, "merges.txt").read_text().splitlines() if line and not line.startswith("#")]
    for special in specials:
        vocab[special] = len(vocab)
    return vocab, merges


def build_clip_tokenizer(out: Path) -> None:
    """Write a CLIPTokenizer folder (vocab.json, merges.txt, tokenizer.json, configs).

    The end-of-text token gets the highest id, as in OpenAI's CLIP, so models that
    pool at `argmax(input_ids)` and models that pool at `eos_token_id` agree."""
    from transformers import CLIPTokenizer

    # CLIP's alphabet holds every byte both bare and with `</w>`; the trainer adds
    # only the word-final forms it sees, so complete them before the merges.
    vocab, merges = _train_bpe("</w>", [], 2000)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    for ch in sorted(alphabet):
        for piece in (ch, ch + "</w>"):
            if piece not in vocab:
                vocab[piece] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)
    tokenizer.save_pretrained(str(out))


def build_gpt2_tokenizer(out: Path) -> None:
    """Write a GPT2Tokenizer folder whose `<|endoftext|>` is bos, eos and pad."""
    from transformers import GPT2Tokenizer

    vocab, merges = _train_bpe("", ["<|endoftext|>"], 1000)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=32)
    tokenizer.save_pretrained(str(out))
