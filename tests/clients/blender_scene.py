"""Run inside Blender (``blender -b --factory-startup --python-exit-code 1 --python THIS -- ARGS.json``).

Builds a scene per case at the case's rate with two trimmed movie strips, enables the muvi
add-on, selects the strips, runs the Generate operator to the end and checks the sound strips;
saves the .blend, reloads it and checks again. Also asks for what must be refused (a strip whose
media rate is not the scene's, a server that is not there) and checks the Blender report. Prints
one ``MUVI-RESULT {json}`` line; any failed check raises (exit code 1).
"""

import json
import sys

import addon_utils
import bpy

args = json.loads(open(sys.argv[sys.argv.index("--") + 1]).read())
addon_utils.enable("muvi_blender", default_set=True, handle_error=None)
prefs = bpy.context.preferences.addons["muvi_blender"].preferences
prefs.muvi_path, prefs.token_file = args["muvi_path"], args["token_file"]
results = {}


def _scene(case):
    scene = bpy.data.scenes.new(case["name"])
    bpy.context.window.scene = scene if bpy.context.window else scene
    num, den = case["rate"]
    scene.render.fps, scene.render.fps_base = (num, 1.0) if den == 1 else (round(num / den), den * round(num / den) / num)
    ed = scene.sequence_editor_create()
    strips = []
    for k, (path, src_in, length, record_in) in enumerate(case["strips"]):
        s = ed.sequences.new_movie(name=f"clip{k}", filepath=path, channel=1 + k % 2, frame_start=record_in - src_in)
        s.frame_offset_start = src_in  # trimmed: the strip shows from media frame src_in
        s.frame_final_duration = length
        strips.append(s)
    for s in ed.sequences_all:
        s.select = True
    return scene


def _run(scene):
    with bpy.context.temp_override(scene=scene):
        scene.muvi.server, scene.muvi.seed = args["server"], 3
        scene.muvi.output_name, scene.muvi.overwrite = scene.name, True
        return bpy.ops.muvi.generate(wait=True)


for case in args["cases"]:
    scene = _scene(case)
    status = _run(scene)
    sounds = sorted((s for s in scene.sequence_editor.sequences_all if s.type == "SOUND"), key=lambda s: s.channel)
    results[case["name"]] = {
        "status": sorted(status),
        "sounds": [{"name": s.name, "start": s.frame_final_start, "duration": s.frame_final_duration, "channel": s.channel,
                    "path": bpy.path.abspath(s.sound.filepath)} for s in sounds],
        "markers": len(scene.timeline_markers),
        "movie_channels": sorted({s.channel for s in scene.sequence_editor.sequences_all if s.type == "MOVIE"}),
    }

good_server, good_token = args["server"], prefs.token_file
for bad in args.get("refuse", []):
    scene = _scene(bad)
    args = {**args, "server": bad.get("server", good_server)}
    prefs.token_file = bad.get("token_file", good_token)
    try:
        status = _run(scene)
        results[bad["name"]] = {"status": sorted(status)}
    except RuntimeError as exc:  # an operator's ERROR report raises in background mode
        results[bad["name"]] = {"status": ["CANCELLED"], "error": str(exc).strip().splitlines()[-1]}

bpy.ops.wm.save_as_mainfile(filepath=args["blend"])
bpy.ops.wm.open_mainfile(filepath=args["blend"])
reloaded = {sc.name: len([s for s in (sc.sequence_editor.sequences_all if sc.sequence_editor else []) if s.type == "SOUND"])
            for sc in bpy.data.scenes}
print("MUVI-RESULT " + json.dumps({"cases": results, "reloaded": reloaded}))
