"""The decoder retraining step of the generator (small and CPU-fast: a fresh VAE, 40 scenes)."""

import numpy as np
import torch

from shapesworld.generator import encode_pool, sharpen_decoder, vae_model
from shapesworld.prompts import split
from shapesworld.world import render


def test_sharpen_decoder_trains_only_the_decoder_and_lowers_its_error():
    torch.manual_seed(0)
    vae = vae_model().eval()
    prompts = split()[0][:40]
    images = torch.stack([torch.from_numpy(np.asarray(render(p.spec, k).image)).permute(2, 0, 1) for k, p in enumerate(prompts)])
    latents = encode_pool(vae, images)
    encoder = {k: v.clone() for k, v in vae.encoder.state_dict().items()}
    figures = sharpen_decoder(vae, latents, images, steps=30, batch=8, seed=0)
    # The latent space (and so a trained UNet) stays valid only if the encoder is untouched.
    assert all(torch.equal(v, vae.encoder.state_dict()[k]) for k, v in encoder.items())
    assert figures["decoder_steps"] == 30
    assert figures["decoder_psnr_db"] > figures["decoder_psnr_db_before"] + 0.5
