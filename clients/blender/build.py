"""Build the installable zip of the Blender add-on: ``python clients/blender/build.py [OUT.zip]``.

Blender ▸ Edit ▸ Preferences ▸ Add-ons ▸ Install… takes the zip (or copy the ``muvi_blender``
folder into Blender's ``scripts/addons``). Then set the muvi installation folder in the add-on's
preferences.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_zip(out: Path | str = HERE / "dist" / "muvi_blender.zip") -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted((HERE / "muvi_blender").rglob("*.py")):
            z.write(f, f.relative_to(HERE).as_posix())
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build_zip(*sys.argv[1:2]))
