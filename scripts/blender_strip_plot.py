"""Draw a .blend's Sequencer strips as a picture (what Blender's own sequencer view shows, without
the OpenGL a headless Blender lacks): ``python scripts/blender_strip_plot.py SCENE.blend OUT.png``.

Blender dumps every strip of every scene (kind, channel, first frame, length, name); matplotlib
draws one row per channel, movie strips blue, sound strips green, timeline markers as ticks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

DUMP = """
import bpy, json, sys
out = []
for sc in bpy.data.scenes:
    strips = [dict(kind=s.type, channel=s.channel, start=s.frame_final_start, length=s.frame_final_duration, name=s.name)
              for s in (sc.sequence_editor.sequences_all if sc.sequence_editor else [])]
    out.append(dict(scene=sc.name, fps=sc.render.fps / sc.render.fps_base, strips=strips,
                    markers=[(m.name, m.frame) for m in sc.timeline_markers]))
open(sys.argv[sys.argv.index("--") + 1], "w").write(json.dumps(out))
"""


def main(blend: str, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        script, dump = Path(tmp) / "dump.py", Path(tmp) / "strips.json"
        script.write_text(DUMP)
        subprocess.run(["blender", "-b", blend, "--python-exit-code", "1", "--python", str(script), "--", str(dump)],
                       check=True, capture_output=True)
        scenes = [s for s in json.loads(dump.read_text()) if s["strips"]]
    fig, axes = plt.subplots(len(scenes), 1, figsize=(11, 1.2 + 0.55 * max(len({x["channel"] for x in s["strips"]})
                                                                          for s in scenes) * len(scenes)), squeeze=False)
    for ax, sc in zip(axes[:, 0], scenes):
        for s in sc["strips"]:
            colour = "#4a7fb5" if s["kind"] == "MOVIE" else "#5aa469"
            ax.broken_barh([(s["start"], s["length"])], (s["channel"] - 0.4, 0.8), facecolors=colour, edgecolor="k", lw=0.5)
            ax.text(s["start"] + 2, s["channel"], f"{s['name']}  [{s['start']}, +{s['length']}]", va="center", fontsize=7,
                    color="white")
        for name, frame in sc["markers"]:
            if name.startswith("bar") or name == "cut":
                ax.axvline(frame, color="#c44" if name == "cut" else "#999", lw=0.6, alpha=0.7)
        ax.set_title(f"scene {sc['scene']} at {sc['fps']:.3f} fps (red: cuts, grey: downbeats)", fontsize=9)
        ax.set_ylabel("channel")
        ax.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:3])
