"""Where engines live by default: one folder per checkpoint under the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

from engines.manifest import weights_digest

__all__ = ["default_engine_dir"]


def default_engine_dir(weights: Path) -> Path:
    """``$XDG_CACHE_HOME/muvi/engines/<first 16 hex of the weights' config sha256>``
    (``~/.cache`` without XDG): new weights get new engines, old ones stay valid."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "muvi" / "engines"
    return root / weights_digest(weights)[:16]
