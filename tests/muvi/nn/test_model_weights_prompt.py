from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from muvi.curves import CONTROL_CHANNELS

from muvi.errors import CheckpointError, InvalidInputError
from muvi.flow import guidance_conditions, guided_velocity, sample
from muvi.music.midi import write_midi
from muvi.music.roll import RollSpec
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap
from muvi.nn.adaptor import grid_positions
from muvi.nn.encoders import LowLevelEncoder
from muvi.nn.model import ModelConfig, MuVi
from muvi.nn.presets import preset
from muvi.prompt import continuation_prompt, load_prompt, prompt_tokens
from muvi.weights import load_checkpoint, read_checkpoint_config, save_checkpoint


def tiny_model(seed: int = 0) -> MuVi:
    torch.manual_seed(seed)
    m = MuVi(ModelConfig(dit=preset("tiny"), music_encoder={"width": 32, "depth": 1, "heads": 2, "out_dim": 16}))
    for name, p in m.named_parameters():
        if p.dim() > 1 and torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.02)  # wake up zero-initialised layers
    return m.eval()


def generate(model: MuVi, frames: np.ndarray, *, seed: int, prompt_notes: list[Note] | None = None, cfg: float = 3.0):  # type: ignore[no-untyped-def]
    spec = model.config.roll
    tempo = TempoMap.constant(120)
    n_steps = 64
    patches = LowLevelEncoder().encode(frames)
    pos = torch.from_numpy(grid_positions(tempo, n_steps, steps_per_beat=4, fps=10, n_frames=frames.shape[0]))[None]
    style, mood = torch.tensor([model.config.style_index("pop")]), torch.tensor([0])
    with torch.no_grad():
        ctl = torch.zeros(1, n_steps, CONTROL_CHANNELS)
        cond, unc = guidance_conditions(model.condition, patches, pos, style, mood, ctl)
    tokens, mask = prompt_tokens(prompt_notes or [], spec, n_steps=n_steps, prefix_steps=16 if prompt_notes else 0)
    prompt, pmask = torch.from_numpy(tokens)[None], torch.from_numpy(mask)[None]
    fn = guided_velocity(model.dit.velocity, cond=cond, uncond=unc, scale=cfg, prompt=prompt, prompt_mask=pmask)
    noise = torch.randn(1, n_steps, spec.token_dim, generator=torch.Generator().manual_seed(seed))
    out = sample(fn, noise, steps=4, prompt=prompt, prompt_mask=pmask)
    return out[0], spec.decode(spec.from_tokens(out[0]))


def test_sampling_with_cfg_and_prompt_is_reproducible() -> None:
    model = tiny_model()
    frames = np.random.default_rng(0).integers(0, 255, (30, 32, 32, 3), dtype=np.uint8)
    prompt = [Note(0, 60, 4, 100, "chords"), Note(4, 64, 8, 100, "chords"), Note(0, 36, 1, 110, "drums")]
    a_tokens, a_notes = generate(model, frames, seed=3, prompt_notes=prompt)
    b_tokens, _ = generate(model, frames, seed=3, prompt_notes=prompt)
    c_tokens, _ = generate(model, frames, seed=4, prompt_notes=prompt)
    assert torch.equal(a_tokens, b_tokens) and not torch.equal(a_tokens, c_tokens)
    # the prompt bar comes back exactly
    assert {(n.start, n.pitch, n.end, n.stem) for n in a_notes if n.start < 16} == {
        (0, 60, 4, "chords"), (4, 64, 8, "chords"), (0, 36, 1, "drums")}
    assert all(n.end <= 64 for n in a_notes)


def test_guidance_amplifies_the_curves_too() -> None:
    """The unconditional branch has neither the picture nor the curves: changing the curves moves
    the conditional branch only."""
    model = tiny_model()
    frames = np.random.default_rng(1).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)
    patches = LowLevelEncoder().encode(frames)
    pos = torch.from_numpy(grid_positions(TempoMap.constant(120), 32, steps_per_beat=4, fps=10, n_frames=20))[None]
    style, mood = torch.tensor([model.config.style_index("pop")]), torch.tensor([0])
    busy = torch.zeros(1, 32, CONTROL_CHANNELS)
    busy[..., : CONTROL_CHANNELS // 2], busy[..., CONTROL_CHANNELS // 2:] = 0.9, 1.0
    with torch.no_grad():
        c0, u0 = guidance_conditions(model.condition, patches, pos, style, mood, torch.zeros_like(busy))
        c1, u1 = guidance_conditions(model.condition, patches, pos, style, mood, busy)
        null = model.condition(patches, pos, style, mood, torch.tensor([True]), torch.zeros_like(busy))
    assert torch.equal(u0[0], u1[0]) and torch.equal(u1[0], null[0]) and torch.equal(u1[1], null[1])
    assert not torch.allclose(c0[0], c1[0])


def test_checkpoint_round_trip_sharding_and_strictness(tmp_path: Path) -> None:
    model = tiny_model(1)
    save_checkpoint(tmp_path / "ck", model, recipe={"steps": 3}, data_manifest_sha256="ab" * 32, max_shard_bytes=200_000)
    cfg = read_checkpoint_config(tmp_path / "ck")
    assert len(cfg["shards"]) > 1 and cfg["recipe"] == {"steps": 3} and cfg["parameters"] == model.n_parameters()
    assert all(Path(tmp_path / "ck" / s["file"]).stat().st_size < 260_000 for s in cfg["shards"])
    loaded, _ = load_checkpoint(tmp_path / "ck")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    # bf16 storage halves the files and loads back close
    save_checkpoint(tmp_path / "bf", model, dtype="bfloat16")
    small, _ = load_checkpoint(tmp_path / "bf")
    w = "dit.blocks.0.attn.qkv.weight"
    assert torch.allclose(small.state_dict()[w], model.state_dict()[w], atol=1e-2)
    # a different model config → readable diff
    other = json.loads((tmp_path / "ck" / "config.json").read_text())
    other["model"]["dit"]["width"] = 32
    (tmp_path / "ck" / "config.json").write_text(json.dumps(other))
    with pytest.raises(CheckpointError, match="shape mismatch .*dit"):
        load_checkpoint(tmp_path / "ck")
    # a corrupted shard → hash error
    save_checkpoint(tmp_path / "ck", model)
    shard = tmp_path / "ck" / "model-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="not a muvi checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_midi_and_audio_prompts(tmp_path: Path) -> None:
    spec = RollSpec()
    score = Score((Note(0, 60, 8, 90, "melody"), Note(8, 62, 24, 90, "melody")), TempoMap.constant(100), 32)
    loaded = load_prompt(write_midi(score, tmp_path / "p.mid"))
    tokens, mask = prompt_tokens(loaded.notes, spec, n_steps=64, prefix_steps=16)
    assert tokens.shape == (64, spec.token_dim) and mask[:16].all() and not mask[16:].any()
    back = spec.decode(spec.from_tokens(tokens))
    assert [(n.start, n.pitch, n.end) for n in back] == [(0, 60, 8), (8, 62, 16)]  # cut at the prefix end
    nxt, m2 = continuation_prompt(tokens, overlap_steps=8, n_steps=32)
    assert m2[:8].all() and np.array_equal(nxt[:8], tokens[56:64])
    with pytest.raises(InvalidInputError, match="must be MIDI"):
        load_prompt(tmp_path / "x.txt")
    # audio: three sine notes C4 E4 G4 at 120 BPM, one beat each
    import soundfile as sf

    sr = 22050
    t = np.arange(sr * 4) / sr
    y = np.zeros_like(t)
    for i, f in enumerate([261.63, 329.63, 392.0, 329.63, 261.63, 329.63, 392.0, 523.25]):
        seg = (t >= i * 0.5) & (t < i * 0.5 + 0.45)
        y[seg] = 0.4 * np.sin(2 * np.pi * f * t[seg])
    sf.write(tmp_path / "hum.wav", y, sr)
    sc = load_prompt(tmp_path / "hum.wav")
    assert [n.pitch for n in sorted(sc.notes)][:4] == [60, 64, 67, 64]
    assert {n.stem for n in sc.notes} == {"melody"}
