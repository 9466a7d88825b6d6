"""Real photographs for camera-like training videos, each with its licence recorded.

Synthetic scenes alone taught the model a world of saturated, flashing, busy pictures; real
footage is greyer, brighter and calmer (issue: "Music that holds up on real footage"). The
camera-like scenes of :mod:`muvi.train.synthvideo` film these photographs with camera moves.

Sources (read in a fixed order, so a run is reproducible):

- matplotlib's sample data (ships with matplotlib): the Grace Hopper portrait (U.S. Navy
  photograph, public domain) and two elevation data sets rendered as shaded relief, like
  aerial shots (Jacksboro fault, Santa Monica topobathy; matplotlib licence);
- Debian's ``mate-backgrounds`` (GPL-2+, ``/usr/share/doc/mate-backgrounds/copyright``):
  nature and desktop photographs (``make setup`` installs the package; without it only the
  matplotlib images are used and :func:`photo_sources` says so).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Photo", "load_photos", "photo_sources", "MATE_BACKGROUNDS"]

log = logging.getLogger(__name__)

MATE_BACKGROUNDS = Path("/usr/share/backgrounds/mate")
_MATE_LICENCE = "GPL-2+ (Debian mate-backgrounds, /usr/share/doc/mate-backgrounds/copyright)"
_MPL_LICENCE = "matplotlib sample data (matplotlib licence; the Hopper portrait is a public-domain U.S. Navy photograph)"
SHORT_SIDE = 160  # photographs are kept at this size: frames are filmed from crops of them


@dataclass(frozen=True)
class Photo:
    name: str
    licence: str
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    sha256: str  # of the source file


def _resize(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(img)
    w, h = im.size
    s = SHORT_SIDE / min(w, h)
    im = im.resize((max(SHORT_SIDE, round(w * s)), max(SHORT_SIDE, round(h * s))), Image.BILINEAR)
    return np.asarray(im.convert("RGB"), np.float32) / 255.0


def _relief(name: str, key: str, cmap: str) -> np.ndarray:
    import matplotlib
    from matplotlib.colors import LightSource

    with np.load(Path(matplotlib.get_data_path()) / "sample_data" / name) as z:
        data = z[key]
    rgb = LightSource(azdeg=315, altdeg=40).shade(data.astype(float), cmap=matplotlib.colormaps[cmap],
                                                  blend_mode="soft", vert_exag=2.0)
    return (rgb[..., :3] * 255).astype(np.uint8)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo_sources() -> list[tuple[str, Path, str]]:
    """(name, file, licence) of every photograph that will be used, in order."""
    import matplotlib

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    out = [("grace_hopper", sample / "grace_hopper.jpg", _MPL_LICENCE),
           ("jacksboro_relief", sample / "jacksboro_fault_dem.npz", _MPL_LICENCE),
           ("topobathy_relief", sample / "topobathy.npz", _MPL_LICENCE)]
    if MATE_BACKGROUNDS.is_dir():
        files = sorted(p for p in MATE_BACKGROUNDS.rglob("*.jpg") if "_" not in p.stem)  # not the 4K copies
        out += [(f"mate/{p.parent.name}/{p.stem}", p, _MATE_LICENCE) for p in files]
    else:
        log.warning("%s not found (Debian mate-backgrounds): camera-like scenes use matplotlib's images only",
                    MATE_BACKGROUNDS)
    return out


@functools.lru_cache(maxsize=1)
def load_photos() -> tuple[Photo, ...]:
    """Every photograph of :func:`photo_sources`, resized to a short side of 160 px."""
    from PIL import Image

    photos = []
    for name, path, licence in photo_sources():
        if path.suffix == ".npz":
            img = _relief(path.name, "elevation", "gist_earth") if "jacksboro" in name else _relief(path.name, "topo", "terrain")
        else:
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))
        photos.append(Photo(name, licence, _resize(img), _sha(path)))
    return tuple(photos)
