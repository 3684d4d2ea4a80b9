"""samples/train_detector.py: crops that keep inference scale, the stage schedule, and a run
that stops and resumes where it left off (model, optimiser, step) in its state folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

SCRIPT = Path(__file__).resolve().parents[2] / "samples" / "train_detector.py"


@pytest.fixture(scope="module")
def trainer():
    spec = importlib.util.spec_from_file_location("train_detector", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_schedule_stages(trainer) -> None:
    stages = trainer.parse_schedule("224:3,640:2")
    assert stages == ((224, 3), (640, 2))
    assert [trainer.crop_at(stages, s) for s in range(6)] == [224, 224, 224, 640, 640, None]
    with pytest.raises(SystemExit, match="multiples of 32"):
        trainer.parse_schedule("100:3")


def test_crops_keep_inference_scale(trainer) -> None:
    from edgekit.bundle import InputSpec

    spec = InputSpec(shape=(1, 3, 640, 640))
    full_boxes, crop_boxes = [], []
    for i in range(12):
        image, boxes, classes = trainer.make_sample(np.random.default_rng([5, i, 0]), spec, 640)
        assert image.shape == (3, 640, 640)
        full_boxes.append(boxes)
        image, boxes, classes = trainer.make_sample(np.random.default_rng([5, i, 0]), spec, 224)
        assert image.shape == (3, 224, 224) and len(boxes) == len(classes)
        assert ((boxes >= 0) & (boxes <= 224)).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 2).all()
        crop_boxes.append(boxes)
    # Same scene, same letterbox scale: a crop only removes objects, it never shrinks them.
    assert sum(map(len, crop_boxes)) > 0
    largest = max(float((b[:, 2:] - b[:, :2]).max()) for b in full_boxes if len(b))
    assert max(float((b[:, 2:] - b[:, :2]).max()) for b in crop_boxes if len(b)) <= largest


def test_run_resumes_from_its_state(trainer, tmp_path: Path) -> None:
    args = ["--model", "reference", "--schedule", "64:2,96:1", "--state", str(tmp_path),
            "--no-eval", "--threads", "1", "--log-every", "1"]
    trainer.main([*args, "--minutes", "0"])  # no time: nothing trained, state saved
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 0
    trainer.main([*args, "--minutes", "5"])
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 3 and state["schedule"] == [[64, 2], [96, 1]]
    assert state["stages"]["64"]["steps"] == 2 and state["stages"]["96"]["images"] == 8
    assert state["opt"]["state"]  # AdamW moments travel with the run
    first = {k: v.clone() for k, v in state["model"].items()}
    # A longer schedule continues from step 3 with the saved weights and moments.
    trainer.main([*args[:3], "64:2,96:2", *args[4:], "--minutes", "5"])
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 4
    assert any(not torch.equal(first[k], v) for k, v in state["model"].items())


def test_bf16_loss_is_close_to_fp32_and_trains(trainer) -> None:
    """--bf16 runs the network under CPU bf16 autocast; the loss it returns is fp32 and close
    to the fp32 loss of the same weights and batch, and its gradients reach the weights."""
    from edgekit.bundle import InputSpec

    torch.manual_seed(0)
    model = trainer.build_model({**trainer.PRESETS["reference"].arch,
                                 "num_classes": len(trainer.LABELS)})
    model.set_imgsz(96)
    model.train()
    images, boxes, classes = trainer.make_batch(0, 0, 2, InputSpec(shape=(1, 3, 640, 640)), 96)
    fp32, _ = trainer.compute_loss(model, images, boxes, classes)
    bf16, _ = trainer.compute_loss(model, images, boxes, classes, bf16=True)
    assert bf16.dtype == torch.float32
    assert abs(float(bf16) - float(fp32)) < 0.05 * float(fp32)
    bf16.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad)
