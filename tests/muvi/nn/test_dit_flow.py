from __future__ import annotations

import pytest
import torch

from muvi.curves import CONTROL_CHANNELS

from muvi.errors import Cancelled, InvalidInputError
from muvi.flow import (
    cfg_combine,
    condition_dropout,
    flow_loss,
    guided_velocity,
    interpolate,
    logit_normal_t,
    random_prompt_mask,
    sample,
)
from muvi.nn.dit import MIN_REMAINING, MuViDiT
from muvi.nn.presets import PRESETS, preset


def _dit(token_dim: int = 24) -> MuViDiT:
    torch.manual_seed(0)
    dit = MuViDiT(preset("tiny"), token_dim=token_dim, cond_dim=64)
    for p in dit.parameters():  # leave the zero-init: give every weight some value to test paths
        torch.nn.init.normal_(p, std=0.05)
    return dit


def _inputs(b: int, t: int, f: int = 24) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, t, f, generator=g), torch.rand(b, generator=g), torch.randn(b, t, 64, generator=g),
            torch.randn(b, 64, generator=g), torch.tensor([1] * b), torch.tensor([2] * b))


def _controls(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.rand(b, n, CONTROL_CHANNELS // 2, generator=g), torch.ones(b, n, CONTROL_CHANNELS // 2)], -1)


def test_presets_match_the_paper() -> None:
    assert (PRESETS["small"].width, PRESETS["small"].depth, PRESETS["small"].heads) == (768, 12, 16)
    assert (PRESETS["base"].width, PRESETS["base"].depth) == (1024, 12)
    assert (PRESETS["large"].width, PRESETS["large"].depth) == (1280, 16)
    with pytest.raises(InvalidInputError):
        preset("huge")
    with pytest.raises(InvalidInputError, match="heads"):
        preset("tiny", heads=5)


def test_velocity_shapes_any_length_and_zero_init() -> None:
    fresh = MuViDiT(preset("tiny"), token_dim=24, cond_dim=64)
    x, t, vis, pooled, style, mood = _inputs(2, 33)
    tok, vec = fresh.prepare(vis, pooled, style, mood, torch.zeros(2, dtype=torch.bool), _controls(2, 33))
    clean = fresh.predict_clean(x, t, tok, vec, torch.zeros_like(x), torch.zeros(2, 33, 1))
    assert clean.shape == (2, 33, 24) and torch.count_nonzero(clean) == 0  # adaLN-Zero + zero output layer
    v = fresh.velocity(x, t, tok, vec, torch.zeros_like(x), torch.zeros(2, 33, 1))
    remaining = (1 - t).clamp(min=MIN_REMAINING)[:, None, None]
    assert torch.allclose(v, (clean - x) / remaining)  # v follows from the clean estimate
    dit = _dit()
    for n in (16, 100, 256):
        x, t, vis, pooled, style, mood = _inputs(1, n)
        tok, vec = dit.prepare(vis, pooled, style, mood, torch.zeros(1, dtype=torch.bool), _controls(1, n))
        assert dit.velocity(x, t, tok, vec, torch.zeros_like(x), torch.zeros(1, n, 1)).shape == (1, n, 24)


def test_dropping_the_condition_ignores_it() -> None:
    dit = _dit()
    x, t, vis, pooled, style, mood = _inputs(2, 20)
    drop = torch.ones(2, dtype=torch.bool)
    ctl = _controls(2, 20)
    a = dit.prepare(vis, pooled, style, mood, drop, ctl)
    b = dit.prepare(vis * 5, pooled + 3, style + 3, mood + 1, drop, ctl)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    kept = dit.prepare(vis, pooled, style, mood, torch.zeros(2, dtype=torch.bool), ctl)
    assert not torch.equal(a[1], kept[1])


def test_control_curves_stay_in_both_guidance_branches() -> None:
    """Dropping the picture (CFG) keeps the curves; a zero-initialised projection ignores them."""
    dit = _dit()
    torch.nn.init.zeros_(dit.control_proj.weight)
    torch.nn.init.zeros_(dit.control_proj.bias)
    x, t, vis, pooled, style, mood = _inputs(2, 20)
    drop = torch.ones(2, dtype=torch.bool)
    fresh = dit.prepare(vis, pooled, style, mood, drop, _controls(2, 20))
    assert torch.equal(fresh[0], dit.prepare(vis, pooled, style, mood, drop, torch.zeros(2, 20, CONTROL_CHANNELS))[0])
    torch.nn.init.normal_(dit.control_proj.weight)
    a = dit.prepare(vis, pooled, style, mood, drop, _controls(2, 20))
    b = dit.prepare(vis, pooled, style, mood, drop, _controls(2, 20, seed=1))
    assert not torch.equal(a[0], b[0])  # the curves reach the dropped branch too


def test_loss_time_sampling_and_dropout_are_reproducible() -> None:
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    t1, t2 = logit_normal_t(1000, generator=g1), logit_normal_t(1000, generator=g2)
    assert torch.equal(t1, t2) and 0 < t1.min() and t1.max() < 1 and abs(t1.mean() - 0.5) < 0.03
    data, noise = torch.randn(2, 8, 4), torch.randn(2, 8, 4)
    assert flow_loss(data, data) == 0
    mask = torch.zeros(2, 8, 1)
    mask[:, 4:] = 1
    wrong = data.clone()
    wrong[:, :4] += 100  # errors only where the loss is masked out
    assert flow_loss(wrong, data, mask) == 0
    on = torch.full((1, 1, 2), -1.0)
    on[0, 0, 1] = 1.0  # one note cell, one silent cell, the same error on both
    per_cell = flow_loss(on + 0.5, on, note_weight=8.0) * 2
    assert per_cell == pytest.approx(0.25 * (1 + 9))
    assert torch.allclose(interpolate(data, noise, torch.tensor([0.0, 1.0]))[1], data[1])
    d = condition_dropout(10000, 0.1, generator=torch.Generator().manual_seed(0))
    assert 0.08 < d.float().mean() < 0.12
    m = random_prompt_mask(64, 64, p=0.5, max_fraction=0.5, quantum=16, generator=torch.Generator().manual_seed(0))
    lengths = m.squeeze(-1).sum(1)
    assert set(lengths.tolist()) <= {0.0, 16.0, 32.0} and (lengths == 0).any() and (lengths > 0).any()
    assert torch.all(m[:, :1] >= m[:, 1:2])  # prefixes


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_samplers_follow_a_straight_flow_exactly(method: str) -> None:
    target = torch.randn(1, 8, 3)

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # exact velocity of the straight path
        return (target - x) / (1 - t[:, None, None]).clamp(min=1e-6)

    out = sample(v, torch.randn(1, 8, 3), steps=10, method=method)
    assert torch.allclose(out, target, atol=1e-4)


def test_cfg_progress_cancel_and_prompt() -> None:
    assert torch.equal(cfg_combine(torch.tensor([3.0]), torch.tensor([1.0]), 2.5), torch.tensor([6.0]))
    calls: list[int] = []

    def step(x, t, tok, vec, prompt, mask):  # type: ignore[no-untyped-def]
        calls.append(x.shape[0])
        return vec[:, None, :].expand_as(x)

    cond = (torch.zeros(1, 4, 2), torch.ones(1, 2))
    unc = (torch.zeros(1, 4, 2), torch.zeros(1, 2))
    prompt, mask = torch.full((1, 4, 2), 7.0), torch.tensor([[[1.0], [0.0], [0.0], [0.0]]])
    fn = guided_velocity(step, cond=cond, uncond=unc, scale=3.0, prompt=prompt, prompt_mask=mask)
    seen = []
    out = sample(fn, torch.zeros(1, 4, 2), steps=5, progress=lambda i, n: seen.append((i, n)), prompt=prompt, prompt_mask=mask)
    assert calls == [2] * 5  # cond and uncond as one batch
    assert torch.allclose(out[0, 1:], torch.full((3, 2), 3.0))  # v = 0 + 3 * (1 - 0) integrated over [0, 1]
    assert torch.equal(out[0, 0], torch.full((2,), 7.0))  # prompt kept exactly
    assert seen == [(i, 5) for i in range(1, 6)]
    calls.clear()  # scale 0: the unconditional prediction alone, one batch
    fn0 = guided_velocity(step, cond=cond, uncond=unc, scale=0.0, prompt=prompt, prompt_mask=mask)
    assert torch.equal(fn0(torch.zeros(1, 4, 2), torch.zeros(1)), torch.zeros(1, 4, 2)) and calls == [1]
    n = iter(range(100))
    with pytest.raises(Cancelled, match="step 3 of 5"):
        sample(fn, torch.zeros(1, 4, 2), steps=5, should_stop=lambda: next(n) >= 2)
    with pytest.raises(InvalidInputError):
        sample(fn, torch.zeros(1, 4, 2), method="rk4")


def test_decode_threshold_matches_the_weighted_loss() -> None:
    from muvi.nn.model import ModelConfig

    cfg = ModelConfig(dit=preset("tiny"), note_weight=8.0)
    th = cfg.decode_spec.onset_threshold
    assert th == pytest.approx(0.8) and cfg.decode_spec.sustain_threshold == th and cfg.roll.onset_threshold == 0.0
    # a cell that is on half the time: the constant that minimises the weighted loss is the threshold
    data = torch.tensor([1.0, -1.0]).reshape(1, 2, 1)
    grid = torch.linspace(-1, 1, 2001)
    losses = torch.stack([flow_loss(torch.full_like(data, float(c)), data, note_weight=8.0) for c in grid])
    assert float(grid[int(losses.argmin())]) == pytest.approx(th, abs=1e-3)
    assert ModelConfig.from_json(cfg.to_json()).note_weight == 8.0


def test_sampling_note_odds_convert_the_weighted_estimate() -> None:
    """The weighted loss's optimum for a ±1 cell on with probability p is the mean of a cell
    whose odds are (1 + w)× higher; odds 1 convert it back to 2p − 1, the data's own mean."""
    from muvi.nn.dit import _scale_odds
    from muvi.nn.model import ModelConfig, MuVi

    w = 8.0
    p = torch.tensor([0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
    weighted = ((1 + w) * p - (1 - p)) / ((1 + w) * p + (1 - p))
    assert torch.allclose(_scale_odds(weighted, 1 / (1 + w)), 2 * p - 1, atol=1e-6)
    assert torch.allclose(_scale_odds(weighted, 1.0), weighted)
    assert torch.all(torch.diff(_scale_odds(torch.linspace(-1, 1, 50), 0.3)) > 0)  # order kept
    # the decode threshold follows: "more likely on than off" under odds k is x > (k − 1)/(k + 1)
    for k, th in ((None, 0.8), (1.0, 0.0), (3.0, 0.5)):
        cfg = ModelConfig(dit=preset("tiny"), note_weight=w, note_odds=k)
        assert cfg.decode_spec.onset_threshold == pytest.approx(th)
        assert ModelConfig.from_json(cfg.to_json()).note_odds == k
    with pytest.raises(InvalidInputError, match="note_odds"):
        ModelConfig(dit=preset("tiny"), note_weight=w, note_odds=12.0)
    # in the model: only the onset and sustain channels move, and odds 1 + w change nothing
    torch.manual_seed(0)
    model = MuVi(ModelConfig(dit=preset("tiny"), note_weight=w))
    for p_ in model.dit.parameters():
        torch.nn.init.normal_(p_, std=0.05)
    f, r = model.token_dim, model.config.roll.n_rows
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(1, 16, f, generator=g), torch.tensor([0.5])
    tok, vec = torch.randn(1, 16, model.config.dit.width, generator=g), torch.randn(1, model.config.dit.width, generator=g)
    args = (x, t, tok, vec, torch.zeros_like(x), torch.zeros(1, 16, 1))
    raw = model.dit.velocity(*args)
    assert torch.equal(model.with_note_odds(1 + w).dit.velocity(*args), raw)
    fewer = model.with_note_odds(1.0).dit.velocity(*args)
    # v = (x̂ − x)/(1 − t): compare the clean estimates (converted ones are clamped to [-1, 1] first)
    x1_raw, x1_fewer = (raw * 0.5 + x).clamp(-1, 1), fewer * 0.5 + x
    assert torch.all(x1_fewer[..., : 2 * r] <= x1_raw[..., : 2 * r] + 1e-5) and not torch.allclose(fewer, raw)
    assert torch.equal(fewer[..., 2 * r:], raw[..., 2 * r:])  # velocity plane as estimated
    assert model.config.decode_spec.onset_threshold == 0.0


def test_prompt_masks_can_also_give_a_clean_suffix_of_whole_beats_before_each_end() -> None:
    g = torch.Generator().manual_seed(0)
    ends = torch.tensor([64, 48, 64, 40] * 8)
    m = random_prompt_mask(32, 64, p=0.0, quantum=16, suffix_p=1.0, suffix_quantum=4, ends=ends, generator=g)[..., 0]
    for row, end in zip(m, ends.tolist()):
        on = torch.nonzero(row).flatten().tolist()
        assert on and on[-1] == end - 1 and len(on) % 4 == 0 and len(on) <= 32 and on == list(range(on[0], end))
    # without a suffix share, the draws (and so the prefixes) are as before
    a = random_prompt_mask(8, 64, p=0.5, generator=torch.Generator().manual_seed(1))
    b = random_prompt_mask(8, 64, p=0.5, suffix_p=0.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
