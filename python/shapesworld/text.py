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

from collections import Counter
from itertools import pairwise
from pathlib import Path

from tokenizers import pre_tokenizers

from .world import BACKGROUNDS, CLASSES, COLOURS, PLURALS, all_specs

CLIP_MAX_LENGTH = 24
EXTRA_WORDS = "a an one two three four of the with photo image picture drawing object objects and on in background".split()


def corpus() -> list[str]:
    """Every sentence of the grammar, plus the bare words users type as queries."""
    words = list(CLASSES) + list(PLURALS.values()) + list(COLOURS) + list(BACKGROUNDS) + EXTRA_WORDS
    return [spec.caption for spec in all_specs()] + words + [f"a photo of a {c}" for c in CLASSES]


def _train_bpe(end_of_word_suffix: str, specials: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE learnt from `corpus()`: repeatedly merge the most frequent adjacent
    pair, ties going to the pair that sorts first, until `vocab_size` or every word is one
    token. Written out rather than taken from `tokenizers`' trainer, which breaks ties and
    numbers word-final symbols in hash order: two rebuilds got different token ids, and so
    differently initialised embeddings, from the same corpus."""
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    # Each sentence also with a leading space, so that GPT-2's `Ġword` forms
    # exist for a sentence's first word too.
    lines = corpus() + [" " + line for line in corpus()]
    counts = Counter(word for line in lines for word, _ in pre_tokenizer.pre_tokenize_str(line))
    words = {word: [*word[:-1], word[-1] + end_of_word_suffix] for word in counts}
    symbols = sorted(set(pre_tokenizers.ByteLevel.alphabet()) | {s for split in words.values() for s in split})
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, split in words.items():
            for pair in pairwise(split):
                pairs[pair] += counts[word]
        if not pairs:
            break
        left, right = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append((left, right))
        vocab.setdefault(left + right, len(vocab))
        for word, split in words.items():
            merged, i = [], 0
            while i < len(split):
                if i + 1 < len(split) and split[i] == left and split[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(split[i])
                    i += 1
            words[word] = merged
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


# Tokens the GPT-2 tokenizer learns from the grammar (every word one token, plus
# `<|endoftext|>`): the captioner's vocabulary, and so its logits' width.
GPT2_VOCAB_SIZE = 410


def build_gpt2_tokenizer(out: Path) -> None:
    """Write a GPT2Tokenizer folder whose `<|endoftext|>` is bos, eos and pad."""
    from transformers import GPT2Tokenizer

    vocab, merges = _train_bpe("", ["<|endoftext|>"], 1000)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=32)
    tokenizer.save_pretrained(str(out))
