"""The random-weight SD 2.1-base builder: its configs give the real model's parameter
counts (counted on the meta device: nothing is allocated), and its tokenizer pads to the
77 tokens the text encoder's positions allow."""

from __future__ import annotations

import json

from parity import sd21_random as sd21


def test_configs_have_sd21_base_parameter_counts():
    assert sd21.count_parameters(sd21.unet) == sd21.UNET_PARAMETERS == 865_910_724
    assert sd21.count_parameters(sd21.vae) == sd21.VAE_PARAMETERS == 83_653_863
    assert sd21.count_parameters(lambda: sd21.text_encoder({"bos": 0, "eos": 1})) == sd21.TEXT_PARAMETERS


def test_unet_config_is_sd21_base():
    config = sd21.UNET_CONFIG
    assert config["cross_attention_dim"] == sd21.TEXT_CONFIG["hidden_size"] == 1024
    assert config["attention_head_dim"] == [5, 10, 20, 20]
    assert config["use_linear_projection"] is True
    assert sd21.VAE_CONFIG["scaling_factor"] == 0.18215


def test_tokenizer_pads_to_77_with_ids_inside_the_vocabulary(tmp_path):
    from transformers import CLIPTokenizer

    ids = sd21.write_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path))
    assert tokenizer.model_max_length == 77
    batch = tokenizer(["3 red circles", "a blue square " * 40], padding="max_length", max_length=77, truncation=True)
    for row in batch["input_ids"]:
        assert len(row) == 77
        assert row[0] == ids["bos"]
        assert ids["eos"] in row
        assert max(row) < sd21.TEXT_CONFIG["vocab_size"]
    assert json.loads((tmp_path / "tokenizer.json").read_text())["padding"]["strategy"] == {"Fixed": 77}
