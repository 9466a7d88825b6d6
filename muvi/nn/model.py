"""The MuVi model as one module: visual adaptor + DiT + music encoder, with its config.

``ModelConfig`` describes everything a checkpoint needs to rebuild the networks: the DiT
preset, the roll layout, the visual encoder (name and output shape), the adaptor aggregation,
and the style/mood vocabularies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from muvi.curves import CONTROLS, CurveRanges
from muvi.errors import InvalidInputError
from muvi.music.roll import RollSpec, StemSpec
from muvi.music.styles import MOODS, STYLE_NAMES
from muvi.nn.adaptor import VisualAdaptor
from muvi.nn.dit import MuViDiT
from muvi.nn.music_encoder import MusicEncoder
from muvi.nn.presets import DiTConfig, preset

__all__ = ["ModelConfig", "MuVi", "STYLE_TAGS", "MOOD_TAGS", "WINDOW_BARS"]

# Bars the model sees at once: the pipeline samples a timeline in windows this long (joined by
# prompts), training cuts windows of this length (window_steps 256 = 16 bars of 4/4 at 16ths),
# and the engines are built and verified for calls up to it (engines.specs).
WINDOW_BARS = 16

STYLE_TAGS = ("none", *STYLE_NAMES, "chorale")
MOOD_TAGS = ("none", *MOODS)


@dataclass(frozen=True)
class ModelConfig:
    dit: DiTConfig = field(default_factory=lambda: preset("compact"))
    roll: RollSpec = field(default_factory=RollSpec)
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "lowlevel", "grid": 4, "size": 64, "dim": 12, "n_tokens": 17})
    aggregation: str = "softmax"
    music_encoder: dict[str, int] = field(default_factory=lambda: {"width": 192, "depth": 2, "heads": 4, "out_dim": 128})
    styles: tuple[str, ...] = STYLE_TAGS
    moods: tuple[str, ...] = MOOD_TAGS
    # The training loss weighs note cells 1 + note_weight (muvi.flow.flow_loss). It is part of
    # what the output means: the predicted roll crosses 0 where a note is only 1/(2 + w) likely,
    # so "more likely on than off" is x̂ > w / (w + 2) — unless sampling converts it (below).
    note_weight: float = 8.0
    # That weighting also tilts *sampling*: integrating the weighted estimate samples each
    # onset/sustain cell with its odds of being on multiplied by 1 + note_weight (more notes
    # than the data has). Sampling converts the estimate to the odds factor ``note_odds``
    # instead (1: the data's own rate; None: 1 + note_weight, no conversion). It is calibrated
    # per checkpoint on training windows (muvi.evaluate.calibrate_note_odds), since a model
    # short of training is less sure than the ideal estimate the conversion assumes.
    note_odds: float | None = None
    # per-clip robust normalisation of the visual tokens in the adaptor (muvi.nn.adaptor);
    # checkpoints from before the control curves were trained without it
    normalise_visual: bool = True
    # the control curves the DiT takes (muvi.curves.CONTROLS) and each style's range of them
    # over the training corpus (CurveRanges.to_json), which maps the picture's levels onto
    # music the style plays; None before a training run has measured them
    controls: tuple[str, ...] = CONTROLS
    control_ranges: dict[str, Any] | None = None

    @property
    def curve_ranges(self) -> CurveRanges | None:
        return None if self.control_ranges is None else CurveRanges.from_json(self.control_ranges)

    @property
    def sampling_note_odds(self) -> float:
        return 1.0 + self.note_weight if self.note_odds is None else self.note_odds

    @property
    def window_steps(self) -> int:
        """Grid steps in the longest window the pipeline samples: :data:`WINDOW_BARS` bars of
        4/4 (the longest meter), at most what the DiT supports."""
        return min(WINDOW_BARS * 4 * self.roll.steps_per_beat, self.dit.max_steps)

    @property
    def decode_spec(self) -> RollSpec:
        """The roll spec with the decode threshold the sampling implies: a sample with a
        note's odds tilted by k is "more likely on than off" above (k − 1)/(k + 1) (w/(w + 2)
        with no conversion)."""
        k = self.sampling_note_odds
        th = (k - 1.0) / (k + 1.0)
        return replace(self.roll, onset_threshold=th, sustain_threshold=th)

    def __post_init__(self) -> None:
        if len(self.styles) > self.dit.n_styles or len(self.moods) > self.dit.n_moods:
            raise InvalidInputError("more style/mood tags than the DiT's embedding tables hold")
        if tuple(self.controls) not in ((), CONTROLS):
            raise InvalidInputError(f"unsupported control curves {list(self.controls)}; this muvi knows {list(CONTROLS)}")
        if self.note_odds is not None and not 1.0 <= self.note_odds <= 1.0 + self.note_weight:
            raise InvalidInputError(f"note_odds must lie in [1, 1 + note_weight = {1.0 + self.note_weight:g}], "
                                    f"got {self.note_odds:g}")

    def style_index(self, style: str | None) -> int:
        return _tag_index("style", self.styles, style)

    def mood_index(self, mood: str | None) -> int:
        return _tag_index("mood", self.moods, mood)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["roll"] = {
            "stems": [asdict(s) for s in self.roll.stems],
            "steps_per_beat": self.roll.steps_per_beat,
            "beats_per_bar": self.roll.beats_per_bar,
            "max_note_steps": self.roll.max_note_steps,
        }
        d["styles"], d["moods"], d["controls"] = list(self.styles), list(self.moods), list(self.controls)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ModelConfig":
        r = d["roll"]
        roll = RollSpec(
            stems=tuple(StemSpec(**s) for s in r["stems"]),
            steps_per_beat=r["steps_per_beat"],
            beats_per_bar=r["beats_per_bar"],
            max_note_steps=r["max_note_steps"],
        )
        return cls(
            dit=DiTConfig.from_json(d["dit"]), roll=roll, encoder=dict(d["encoder"]), aggregation=d["aggregation"],
            music_encoder=dict(d["music_encoder"]), styles=tuple(d["styles"]), moods=tuple(d["moods"]),
            note_weight=float(d.get("note_weight", 8.0)),
            note_odds=None if d.get("note_odds") is None else float(d["note_odds"]),
            # checkpoints from before the control curves: no normalisation, no curves trained
            normalise_visual=bool(d.get("normalise_visual", False)),
            controls=tuple(d.get("controls", ())), control_ranges=d.get("control_ranges"),
        )


def _tag_index(kind: str, vocabulary: tuple[str, ...], value: str | None) -> int:
    """Index of a tag in its vocabulary; ``None``/``"none"`` is 0 (unconditional)."""
    if value is None or value == "none":
        return 0
    if value not in vocabulary:
        raise InvalidInputError(f"unknown {kind} {value!r}; choose from {', '.join(vocabulary[1:])}")
    return vocabulary.index(value)


class MuVi(nn.Module):
    """Adaptor + DiT + music encoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.dit.width
        self.adaptor = VisualAdaptor(int(config.encoder["dim"]), w, aggregation=config.aggregation,
                                     normalise=config.normalise_visual)
        self.dit = MuViDiT(config.dit, token_dim=config.roll.token_dim, cond_dim=w)
        self._set_odds()
        self.music_encoder = MusicEncoder(config.roll.token_dim, **config.music_encoder)
        # projects the adaptor's aligned features into the music encoder's space (contrastive head)
        self.visual_head = nn.Linear(w, int(config.music_encoder["out_dim"]))

    @property
    def token_dim(self) -> int:
        return self.config.roll.token_dim

    def with_note_odds(self, odds: float | None) -> "MuVi":
        """Set the sampling note odds (see :class:`ModelConfig`) in place; returns self."""
        self.config = replace(self.config, note_odds=None if odds is None else float(odds))
        self._set_odds()
        return self

    def _set_odds(self) -> None:
        c = self.config
        self.dit.set_note_odds(c.sampling_note_odds / (1.0 + c.note_weight), binary_features=2 * c.roll.n_rows)

    def condition(
        self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor, drop: torch.Tensor,
        controls: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Adaptor then DiT.prepare: (cond_tokens (B, Ts, W), cond_vec (B, W)); ``controls``
        (B, Ts, CONTROL_CHANNELS) are the control curves per grid step (zeros: none given)."""
        aligned, pooled = self.adaptor(patches, positions)
        return self.dit.prepare(aligned, pooled, style, mood, drop, controls)

    def with_controls(self) -> "MuVi":
        """Mark a checkpoint from before the control curves as one that takes them (the
        projection is zero until trained) and normalises its visual tokens; in place."""
        self.config = replace(self.config, controls=CONTROLS, normalise_visual=True)
        self.adaptor.normalise = True
        return self

    def n_parameters(self, part: str | None = None) -> int:
        mod = self if part is None else getattr(self, part)
        return sum(p.numel() for p in mod.parameters())
