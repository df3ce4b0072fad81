from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised small Faster R-CNN saved as a flickermine checkpoint."""
    from flickermine.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", 2, min_size=160, max_size=224)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, "fasterrcnn_mobilenet_v3_large_320_fpn",
                    [{"id": 1, "name": "thing"}])  # fmt: skip
    return path


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    from factories import Sprite, render_frames, texture, write_video

    a = Sprite(texture(3, 40, 30), {t: (20 + 4 * t, 30) for t in range(12)})
    frames = render_frames(12, 200, 150, [a])
    for f in frames:
        f[5:15, 5:15] = 255  # a bright square for the plugin detector
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames)


def reference(checkpoint: Path, frames: list[np.ndarray], threshold: float = 0.0):
    """Run the checkpoint's model directly (the behaviour under test is the backend)."""
    from flickermine.models import load_checkpoint_model

    model, _, _ = load_checkpoint_model(checkpoint)
    model.eval()
    out = []
    with torch.inference_mode():
        for f in frames:
            x = torch.from_numpy(np.ascontiguousarray(f[:, :, ::-1].transpose(2, 0, 1))) / 255.0
            o = model([x.float()])[0]
            keep = (o["labels"] == 1) & (o["scores"] >= threshold)
            out.append((o["boxes"][keep].numpy(), o["scores"][keep].numpy()))
    return model, out
