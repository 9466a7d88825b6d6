"""muvi for Blender's Video Sequence Editor: music for the selected strips, stems back on the timeline.

Sequencer ▸ sidebar (N) ▸ *muvi*: pick style, mood, energy, ending, feel and seed, select movie strips,
press *Generate*. The strips travel to a running ``muvi serve`` as timeline segments (source
in/out and record in, in the scene's frames at its exact rate); the streamed progress shows in
the status bar (*Cancel* or Esc stops the job); when it is done the four stems and the mix land
as sound strips on free channels at the selection's first frame, and beats, downbeats and cuts
can become timeline markers.

The add-on imports only grpc, protobuf and muvi's generated stubs, found through the muvi
installation set in the add-on's preferences (its folder and its virtual environment's
site-packages): importing the muvi package itself (torch, multiprocessing) inside Blender 3.4
crashes Blender at exit. The work is done by :mod:`muvi_blender.core`, which has no ``bpy`` in
it and is tested on its own; this module is the Blender side.
"""

from __future__ import annotations

bl_info = {
    "name": "muvi",
    "author": "muvi",
    "version": (0, 3, 0),
    "blender": (3, 4, 0),
    "location": "Sequencer > Sidebar > muvi",
    "description": "Music for the selected strips from a muvi server: stems on audio tracks, beats as markers",
    "category": "Sequencer",
}

import os  # noqa: E402
import threading  # noqa: E402

import bpy  # noqa: E402
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty  # noqa: E402

from . import core  # noqa: E402

STYLES = [("auto", "Auto (from the picture)", "")] + [(s, s.title(), "") for s in core.STYLES]
MOODS = [("auto", "Auto (from the picture)", "")] + [(m, m.title(), "") for m in core.MOODS]
ENERGIES = [(e, e.title(), "") for e in ("auto", "low", "medium", "high")]
ENDINGS = [(e, e.title(), "") for e in core.ENDINGS]
FEELS = [(f, f.title(), "") for f in core.FEELS]


class MuviPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    muvi_path: StringProperty(name="muvi installation", subtype="DIR_PATH",
                              default=os.environ.get("MUVI_HOME", ""),
                              description="the muvi folder (with plugin_server/ and .venv/): where the gRPC stubs are")
    token_file: StringProperty(name="Token file", subtype="FILE_PATH", default="",
                               description="the server's token file (empty: ~/.muvi/server.token)")

    def draw(self, context):  # type: ignore[no-untyped-def]
        self.layout.prop(self, "muvi_path")
        self.layout.prop(self, "token_file")


class MuviSettings(bpy.types.PropertyGroup):
    server: StringProperty(name="Server", default="127.0.0.1:50051")
    style: EnumProperty(name="Style", items=STYLES, default="auto")
    mood: EnumProperty(name="Mood", items=MOODS, default="auto")
    energy: EnumProperty(name="Energy", items=ENERGIES, default="auto")
    ending: EnumProperty(name="Ending", items=ENDINGS, default="auto")
    feel: EnumProperty(name="Feel", items=FEELS, default="natural",
                       description="how the stems are played: grid (as written), tight, natural or loose")
    seed: IntProperty(name="Seed", default=0, min=0)
    output_name: StringProperty(name="Output", default="", description="folder under the server's output root (empty: the scene's name and a number)")
    markers: BoolProperty(name="Beat markers", default=True, description="add beats, downbeats and cuts as timeline markers")
    overwrite: BoolProperty(name="Overwrite", default=False)
    status: StringProperty(name="Status", default="")


def _prefs(context):  # type: ignore[no-untyped-def]
    return context.preferences.addons[__package__].preferences


def _selected_segments(context):  # type: ignore[no-untyped-def]
    scene = context.scene
    rate = core.scene_rate(scene.render.fps, scene.render.fps_base)
    strips = [s for s in (scene.sequence_editor.sequences_all if scene.sequence_editor else []) if s.select]
    movies = [s for s in strips if s.type == "MOVIE"]
    if not movies:
        raise core.MuviError("select one or more movie strips in the Sequencer")
    segs = []
    for s in sorted(movies, key=lambda s: s.frame_final_start):
        media_fps = float(s.fps) if getattr(s, "fps", 0) else None
        segs.append(core.StripInfo(name=s.name, path=bpy.path.abspath(s.filepath),
                                   source_in=int(s.frame_offset_start + s.animation_offset_start),
                                   duration=int(s.frame_final_duration), record_in=int(s.frame_final_start),
                                   media_fps=media_fps))
    return rate, segs


def _place(context, done, settings):  # type: ignore[no-untyped-def]
    """Sound strips for the stems and the mix; markers for beats, downbeats and cuts."""
    scene = context.scene
    ed = scene.sequence_editor
    used = {s.channel for s in ed.sequences_all}
    channel = max(used, default=0) + 1
    placed = []
    for stem, path in core.stem_files(done):
        strip = ed.sequences.new_sound(name=f"muvi {stem}", filepath=path, channel=channel, frame_start=done.start_frame)
        placed.append(strip)
        channel += 1
    if settings.markers:
        for name, frame in core.marker_frames(done):
            scene.timeline_markers.new(name, frame=frame)
    return placed


class _Job:
    """One request running in a thread; the operator polls it."""

    def __init__(self, request):  # type: ignore[no-untyped-def]
        self.request, self.events, self.result, self.error = request, [], None, None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = core.run(self.request, on_event=self.events.append)
        except core.MuviError as exc:
            self.error = str(exc)


class MUVI_OT_generate(bpy.types.Operator):
    """Send the selected movie strips to muvi and put the music it makes under them"""

    bl_idname = "muvi.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE"},
                       description="run to the end before returning (scripts, background mode)")

    def _request(self, context):  # type: ignore[no-untyped-def]
        settings = context.scene.muvi
        prefs = _prefs(context)
        rate, segs = _selected_segments(context)
        return core.Request(
            muvi_path=prefs.muvi_path, server=settings.server, token_file=prefs.token_file or None, rate=rate,
            strips=segs, style=settings.style, mood=settings.mood, energy=settings.energy, ending=settings.ending,
            feel=settings.feel, seed=settings.seed, output_name=settings.output_name or core.default_output(context.scene.name),
            overwrite=settings.overwrite)

    def execute(self, context):  # type: ignore[no-untyped-def]
        try:
            request = self._request(context)
            if not self.wait and not bpy.app.background:
                return self._start_modal(context, request)
            done = core.run(request, on_event=lambda e: print(f"muvi: {core.describe(e)}"))
            placed = _place(context, done, context.scene.muvi)
        except core.MuviError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"muvi: {len(placed)} sound strips from frame {done.start_frame} ({done.summary})")
        return {"FINISHED"}

    def _start_modal(self, context, request):  # type: ignore[no-untyped-def]
        self._job = _Job(request)
        self._job.thread.start()
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        MUVI_OT_generate.running = self._job
        return {"RUNNING_MODAL"}

    def modal(self, context, event):  # type: ignore[no-untyped-def]
        job = self._job
        if event.type == "ESC":
            core.cancel(job.request)
        if event.type != "TIMER" and event.type != "ESC":
            return {"PASS_THROUGH"}
        if job.events:
            context.workspace.status_text_set(f"muvi: {core.describe(job.events[-1])}")
        if job.thread.is_alive():
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        MUVI_OT_generate.running = None
        if job.error:
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        placed = _place(context, job.result, context.scene.muvi)
        self.report({"INFO"}, f"muvi: {len(placed)} sound strips from frame {job.result.start_frame}")
        return {"FINISHED"}

    running = None


class MUVI_OT_cancel(bpy.types.Operator):
    """Stop the running muvi job (it leaves no files)"""

    bl_idname = "muvi.cancel"
    bl_label = "Cancel"

    def execute(self, context):  # type: ignore[no-untyped-def]
        job = MUVI_OT_generate.running
        if job is None:
            self.report({"WARNING"}, "no muvi job is running")
            return {"CANCELLED"}
        try:
            core.cancel(job.request)
        except core.MuviError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class SEQUENCER_PT_muvi(bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "muvi"
    bl_label = "muvi"

    def draw(self, context):  # type: ignore[no-untyped-def]
        s = context.scene.muvi
        col = self.layout.column()
        for name in ("style", "mood", "energy", "ending", "feel", "seed", "server", "output_name", "markers",
                     "overwrite"):
            col.prop(s, name)
        row = col.row()
        row.operator("muvi.generate", icon="SOUND")
        row.operator("muvi.cancel", icon="CANCEL")


CLASSES = (MuviPreferences, MuviSettings, MUVI_OT_generate, MUVI_OT_cancel, SEQUENCER_PT_muvi)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.muvi = bpy.props.PointerProperty(type=MuviSettings)


def unregister() -> None:
    del bpy.types.Scene.muvi
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
