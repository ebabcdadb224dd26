"""LoRA fine-tuning of a Stable Diffusion UNet on a curated imagefolder dataset, and
export of diffusers Stable Diffusion folders to the ONNX layout the sampler loads.

Entry points: `python -m loratrain` (the trainer, see `train.py`) and
`python -m loratrain.export_onnx` (the ONNX export, see `export_onnx.py`; the graphs
themselves are in `onnx_graphs.py`)."""
