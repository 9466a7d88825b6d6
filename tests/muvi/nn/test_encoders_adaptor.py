from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from muvi.errors import InvalidInputError
from muvi.music.tempo import TempoMap
from muvi.nn.adaptor import AGGREGATIONS, VisualAdaptor, grid_positions
from muvi.nn.encoders import ClipEncoder, LowLevelEncoder, VideoMAEEncoder, load_encoder


def _frames(t: int = 6, size: int = 64) -> np.ndarray:
    f = np.zeros((t, size, size, 3), np.uint8)
    f[:3] = (40, 80, 160)
    f[3:] = (200, 60, 30)  # a cut between frame 2 and 3
    for i in range(t):
        f[i, 10:26, 4 + 6 * i : 20 + 6 * i] = 255  # a square moving right
    return f


def test_lowlevel_shapes_determinism_and_cues() -> None:
    enc = LowLevelEncoder(grid=4)
    out = enc.encode(_frames())
    assert out.shape == (1, 6, 17, 12) and out.dtype == torch.float32
    assert torch.equal(out, enc.encode(_frames()))
    cut, motion = out[0, :, 0, 10], out[0, :, 0, 9]
    assert int(cut.argmax()) == 3 and cut[3] > 0.5 and cut[1] < 0.1
    assert motion[0] == 0 and motion[1] > 0  # the square moved
    # motion is local: the patches the square crosses move, the bottom row does not
    assert out[0, 1, 1:5, 9].max() > 0 and out[0, 1, 13:17, 9].max() == 0
    assert enc.encode(np.stack([_frames(), _frames()])).shape == (2, 6, 17, 12)
    with pytest.raises(InvalidInputError, match="frames must be"):
        enc.encode(np.zeros((4, 4, 3), np.uint8))


def test_clip_and_videomae_load_from_local_folders(tmp_path: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel, VideoMAEConfig, VideoMAEModel

    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, image_size=32, patch_size=16)).save_pretrained(tmp_path / "clip")
    clip = load_encoder("clip", tmp_path / "clip")
    assert isinstance(clip, ClipEncoder) and clip.n_tokens == 5 and clip.dim == 32
    out = clip.encode(_frames(t=3))
    assert out.shape == (1, 3, 5, 32) and torch.isfinite(out).all()
    assert not any(p.requires_grad for p in clip.model.parameters())

    VideoMAEModel(VideoMAEConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 image_size=32, patch_size=16, num_frames=4, tubelet_size=2)).save_pretrained(tmp_path / "vmae")
    vmae = load_encoder("videomae", tmp_path / "vmae")
    assert isinstance(vmae, VideoMAEEncoder)
    out = vmae.encode(_frames(t=6))  # 6 frames → two 4-frame clips, padded
    assert out.shape == (1, 6, 5, 32)
    with pytest.raises(InvalidInputError, match="nothing is downloaded"):
        load_encoder("clip")
    with pytest.raises(InvalidInputError, match="not a clip checkpoint"):
        load_encoder("clip", tmp_path)
    with pytest.raises(InvalidInputError, match="unknown visual encoder"):
        load_encoder("resnet")


def test_grid_positions_follow_the_tempo_map() -> None:
    tempo = TempoMap.from_bpms([(0, 120), (2, 60)])  # beats 0-2 last 0.5 s, then 1 s
    pos = grid_positions(tempo, 16, steps_per_beat=4, fps=10, n_frames=100)
    assert pos[0] == 0 and pos[4] == pytest.approx(5.0) and pos[8] == pytest.approx(10.0)
    assert pos[12] == pytest.approx(20.0)  # after the change a beat is 10 frames
    assert grid_positions(tempo, 16, steps_per_beat=4, fps=Fraction(10), n_frames=12)[-1] == 11  # clamped
    steady = TempoMap.from_bpms([(0, 150)])  # a step is 1 frame at 10 fps
    mirrored = grid_positions(steady, 30, steps_per_beat=4, fps=10, n_frames=11, beyond="mirror")
    assert mirrored[:11].tolist() == list(range(11))  # inside the clip: as before
    assert mirrored[11:21].tolist() == list(range(9, -1, -1)) and mirrored[21:].tolist() == list(range(1, 10))
    with pytest.raises(ValueError, match="beyond"):
        grid_positions(steady, 4, steps_per_beat=4, fps=10, n_frames=4, beyond="wrap")


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_every_aggregation_trains_and_aligns(aggregation: str) -> None:
    torch.manual_seed(0)
    ad = VisualAdaptor(12, 32, aggregation=aggregation)
    patches = torch.randn(2, 10, 17, 12)
    pos = torch.tensor([[0.0, 0.5, 1.0, 9.0, 9.0]] * 2)
    aligned, pooled = ad(patches, pos)
    assert aligned.shape == (2, 5, 32) and pooled.shape == (2, 32)
    frames = ad.mlp(ad.aggregate(patches))
    assert torch.allclose(aligned[:, 0], frames[:, 0], atol=1e-5) and torch.allclose(aligned[:, 3], frames[:, 9], atol=1e-5)
    (aligned.sum() + pooled.sum()).backward()
    assert all(p.grad is not None for p in ad.parameters() if p.requires_grad)


def test_softmax_and_sigmoid_follow_their_formulas() -> None:
    torch.manual_seed(1)
    v = torch.randn(1, 1, 5, 12)
    ad = VisualAdaptor(12, 8, aggregation="softmax")
    n = ad.norm(v)
    a = torch.softmax(ad.gate(n).squeeze(-1), dim=-1)
    assert torch.allclose(ad.aggregate(v), (a.unsqueeze(-1) * n).sum(2), atol=1e-6)
    sg = VisualAdaptor(12, 8, aggregation="sigmoid")
    n = sg.norm(v)
    a = torch.sigmoid(sg.gate(n))
    assert torch.allclose(sg.aggregate(v), (a * n).sum(2) / a.sum(2), atol=1e-5)
    with pytest.raises(InvalidInputError, match="unknown aggregation"):
        VisualAdaptor(12, 8, aggregation="max")
