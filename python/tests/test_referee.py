"""The referee: its post-processing rules, and the committed folder's layout and detections."""

import json

import numpy as np
import pytest

from shapesworld.pack import INTERFACES, PACK_DIR
from shapesworld.referee import EVAL_SEED, TRAIN_SEED, count, detections, onnx_outputs
from shapesworld.world import CLASSES, IMAGE_SIZE, scenes

FOLDER = PACK_DIR / "referee"


def test_a_token_whose_best_entry_is_no_object_detects_nothing():
    # transformers.js's post_process_object_detection: softmax, then the most probable entry.
    logits = np.array([[[0.0, 0.0, 0.0, 0.0, 0.0, 5.0], [0.0, 4.0, 0.0, 0.0, 0.0, 1.0]]], dtype=np.float32)
    boxes = np.array([[[0.5, 0.5, 0.2, 0.2], [0.25, 0.25, 0.1, 0.2]]], dtype=np.float32)
    cls, score, xyxy = detections(logits, boxes)
    assert cls.tolist() == [[-1, 1]]
    assert score[0, 0] == 0
    assert score[0, 1] == pytest.approx(np.exp(4) / (np.exp(4) + 4 + np.exp(1)), rel=1e-5)
    np.testing.assert_allclose(xyxy[0, 1], [0.2, 0.15, 0.3, 0.35], atol=1e-6)


def test_count_drops_overlapping_boxes_and_low_scores():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.11, 0.1, 0.31, 0.3], [0.6, 0.6, 0.8, 0.8], [0.0, 0.6, 0.2, 0.8]])
    assert count(boxes, np.array([0.95, 0.92, 0.91, 0.5])) == 2
    assert count(boxes, np.array([0.95, 0.92, 0.91, 0.5]), threshold=0.3) == 3


def test_referee_scenes_are_none_of_the_other_stages():
    from shapesworld import captioner, clip, detector, generator

    others = {clip.TRAIN_SEED, clip.EVAL_SEED, generator.POOL_SEED, captioner.EVAL_SEED, detector.VAL_SEED, detector.EVAL_SEED}
    assert TRAIN_SEED not in others and EVAL_SEED not in others
    assert not (captioner.TRAIN_SEED_BASE <= TRAIN_SEED < captioner.TRAIN_SEED_BASE + 100)
    assert not (detector.TRAIN_SEED_BASE <= TRAIN_SEED < detector.EVAL_SEED + 1)


needs_folder = pytest.mark.skipif(
    not (FOLDER / "onnx" / "model.onnx").exists(), reason="the referee is not built yet: python -m shapesworld.build --only referee"
)


@needs_folder
def test_folder_is_a_transformers_js_yolos():
    config = json.loads((FOLDER / "config.json").read_text())
    assert config["model_type"] == "yolos"
    assert config["architectures"] == ["YolosForObjectDetection"]
    assert [config["id2label"][str(i)] for i in range(len(CLASSES))] == list(CLASSES)
    assert config["label2id"] == {c: i for i, c in enumerate(CLASSES)}
    assert config["image_size"] == [IMAGE_SIZE, IMAGE_SIZE]
    pre = json.loads((FOLDER / "preprocessor_config.json").read_text())
    assert pre["image_processor_type"] == "YolosImageProcessor"
    assert pre["size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    assert pre["do_pad"] is False  # no padding, so no pixel_mask: the ONNX model takes pixel_values alone
    assert (FOLDER / "model.safetensors").exists()
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file())
    assert size < 8 * 2**20


@needs_folder
def test_onnx_interface_matches_the_manifest_and_the_config():
    import onnxruntime as ort

    session = ort.InferenceSession(str(FOLDER / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    spec = INTERFACES["referee"]["onnx/model.onnx"]
    assert [i.name for i in session.get_inputs()] == list(spec["inputs"])
    assert [o.name for o in session.get_outputs()] == list(spec["outputs"])
    tokens = json.loads((FOLDER / "config.json").read_text())["num_detection_tokens"]
    logits, boxes = session.run(None, {"pixel_values": np.zeros((3, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)})
    assert logits.shape == (3, tokens, len(CLASSES) + 1)
    assert boxes.shape == (3, tokens, 4)


@needs_folder
def test_onnx_finds_the_class_and_count_of_held_out_scenes():
    # Floors a few points under the committed referee's own figures (MODEL_CARD.md).
    items = scenes(100, EVAL_SEED)
    logits, boxes = onnx_outputs(FOLDER, [np.asarray(s.image) for s in items])
    cls, score, xyxy = detections(logits, boxes)
    right = counted = 0
    for i, scene in enumerate(items):
        k = CLASSES.index(scene.spec.cls)
        right += int(cls[i, score[i].argmax()] == k)
        counted += int(count(xyxy[i][cls[i] == k], score[i][cls[i] == k]) == len(scene.objects))
    assert right >= 93, f"class right in {right} of 100 held-out scenes"
    assert counted >= 80, f"count (at 0.9) right in {counted} of 100 held-out scenes"


@needs_folder
def test_transformers_loads_the_weights_the_onnx_file_was_made_from():
    import torch
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    model = AutoModelForObjectDetection.from_pretrained(str(FOLDER)).eval()
    processor = AutoImageProcessor.from_pretrained(str(FOLDER))
    images = [np.asarray(s.image) for s in scenes(4, EVAL_SEED)]
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    assert tuple(pixel_values.shape) == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        out = model(pixel_values=pixel_values)
    logits, boxes = onnx_outputs(FOLDER, images)
    np.testing.assert_allclose(out.logits.numpy(), logits, atol=1e-3)
    np.testing.assert_allclose(out.pred_boxes.numpy(), boxes, atol=1e-3)
