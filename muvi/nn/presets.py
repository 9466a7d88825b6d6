"""Named model sizes. ``small``/``base``/``large`` follow the paper's Table 6; ``compact`` is
the size muvi ships (it must sample 60 s of music in ≤ 10 s on a 2-core CPU); ``tiny`` makes
every API run in seconds in tests."""

from __future__ import annotations

from dataclasses import dataclass, replace

from muvi.errors import InvalidInputError

__all__ = ["DiTConfig", "PRESETS", "preset"]


@dataclass(frozen=True)
class DiTConfig:
    """Shape of the flow-matching DiT and its condition path."""

    name: str
    width: int
    depth: int
    heads: int
    mlp_ratio: float = 4.0
    max_steps: int = 1024  # longest sequence (grid steps) the model supports: 64 bars of 4/4
    n_styles: int = 16  # style tag vocabulary (index 0 = none / unconditional)
    n_moods: int = 16  # mood tag vocabulary (index 0 = none)
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise InvalidInputError(f"width {self.width} must split into {self.heads} heads of even size")
        if self.depth < 1 or self.max_steps < 16:
            raise InvalidInputError("depth must be ≥ 1 and max_steps ≥ 16")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "DiTConfig":
        return cls(**data)  # type: ignore[arg-type]


PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig("tiny", width=64, depth=2, heads=4, max_steps=256),
    "mini": DiTConfig("mini", width=256, depth=6, heads=4),
    "compact": DiTConfig("compact", width=384, depth=8, heads=6),
    "small": DiTConfig("small", width=768, depth=12, heads=16),
    "base": DiTConfig("base", width=1024, depth=12, heads=16),
    "large": DiTConfig("large", width=1280, depth=16, heads=16),
}


def preset(name: str, **changes: object) -> DiTConfig:
    """A preset by name, optionally changed (``preset("tiny", max_steps=512)``)."""
    if name not in PRESETS:
        raise InvalidInputError(f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **changes) if changes else PRESETS[name]
