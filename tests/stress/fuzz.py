"""Generated and mutated requests for the plugin server (hypothesis strategies), and the check
that every answer is a documented one. Shared by the short run in `make test`
(tests/stress/test_fuzz.py) and the long one (benchmarks/stress.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from hypothesis import strategies as st

from plugin_server.v1 import plugin_pb2 as pb

DOCUMENTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAUTHENTICATED}
# an INVALID_ARGUMENT names the field at fault first
FIELDS = ("timeline", "options", "output_name", "request_id")

INT32 = st.one_of(st.integers(-2**31, 2**31 - 1), st.sampled_from([0, 1, -1, 24000, 1001, 30000, 25]))
INT64 = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-10, 400), st.sampled_from([0, 1, -1, 90000, 2**40]))
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e3, 1e3), st.sampled_from([0.0, -0.0]))
NASTY = st.sampled_from(["", "..", "../..", "/", "a/../../b", " x", "\u202e", "é/ü", "\x00", "CON", "a" * 300,
                         "x" * 5000, "../../etc/passwd", "\ufeff", "🎵"])
TEXT = st.one_of(st.text(max_size=40), NASTY)


def paths(clip: Path, folder: Path) -> st.SearchStrategy[str]:
    return st.one_of(st.just(str(clip)), st.just(str(folder)), st.just("/dev/null"), st.just(str(clip) + ".missing"),
                     st.just("cuts.mp4"), TEXT, st.just(str(clip.parent / ".." / clip.parent.name / clip.name)))


def rates() -> st.SearchStrategy[pb.Rate]:
    return st.builds(pb.Rate, num=INT32, den=INT32) | st.sampled_from(
        [pb.Rate(num=25, den=1), pb.Rate(num=30000, den=1001), pb.Rate(num=0, den=0), pb.Rate(num=1, den=0)])


def segments(clip: Path, folder: Path) -> st.SearchStrategy[pb.Segment]:
    plausible = st.builds(lambda a, n, r: pb.Segment(media_path=str(clip), source_in=a, source_out=a + n, record_in=r),
                          st.integers(0, 200), st.integers(-5, 120), st.integers(-5, 10**6))
    wild = st.builds(pb.Segment, media_path=paths(clip, folder), source_in=INT64, source_out=INT64, record_in=INT64,
                     name=TEXT) | st.builds(pb.Segment, media_path=paths(clip, folder), source_in=INT64,
                                            source_out=INT64, record_in=INT64, source_rate=rates())
    return st.one_of(plausible, wild)


def options() -> st.SearchStrategy[pb.GenerateOptions]:
    def build(d: dict[str, Any]) -> pb.GenerateOptions:
        o = pb.GenerateOptions()
        for k, v in d.items():
            if v is None:
                continue
            if k in ("stems", "hits", "sections"):
                getattr(o, k).extend(v)
            else:
                setattr(o, k, v)
        return o

    fields = {
        "style": st.none() | st.sampled_from(["pop", "rock", "polka", ""]) | TEXT, "mood": st.none() | TEXT,
        "key": st.none() | st.sampled_from(["A minor", "H major", "C"]) | TEXT, "bpm": st.none() | FLOAT,
        "meter": st.none() | INT32, "seed": st.none() | INT64, "steps": st.none() | st.integers(-5, 300) | INT32,
        "cfg": st.none() | FLOAT, "prompt_path": st.none() | TEXT, "loudness_lufs": st.none() | FLOAT,
        "energy": st.none() | st.sampled_from(["low", "loud", "0.5", "2", "nan"]) | TEXT,
        "energy_curve": st.none() | st.sampled_from(["0:0.2,1:0.9", "0:x", "5:0.5,1:0.5", "0:0.1,999:0.5"]) | TEXT,
        "ending": st.none() | st.sampled_from(["auto", "ring", "loop", "boom"]) | TEXT, "tail": st.none() | FLOAT,
        "stems": st.none() | st.lists(st.sampled_from(["drums", "bass", "vocals", ""]) | TEXT, max_size=5),
        "hits": st.none() | st.lists(st.sampled_from(["1", "1.2", "3:stop", "x", "-1", "9e99"]) | TEXT, max_size=4),
        "sections": st.none() | st.lists(FLOAT, max_size=4), "preview": st.just(False),
    }
    return st.fixed_dictionaries({}, optional=fields).map(build)


def requests(clip: Path, folder: Path) -> st.SearchStrategy[pb.GenerateRequest]:
    timeline = st.builds(lambda r, segs, name: _timeline(r, segs, name), rates(),
                         st.lists(segments(clip, folder), max_size=4), TEXT)
    return st.builds(lambda tl, o, name, rid, ow, drop: pb.GenerateRequest(
        **({} if drop else {"timeline": tl}), options=o, output_name=name, request_id=rid, overwrite=ow),
        timeline, options(), st.one_of(st.just(""), TEXT), st.one_of(st.just(""), TEXT), st.booleans(),
        st.integers(0, 19).map(lambda x: x == 0))  # now and then no timeline at all


def _timeline(rate: pb.Rate, segs: list[pb.Segment], name: str) -> pb.Timeline:
    tl = pb.Timeline(rate=rate, name=name)
    tl.segments.extend(segs)
    return tl


def judge(call: Any) -> tuple[str, str]:
    """('ok' | status name, message) of a Generate stream; raises AssertionError on an
    undocumented answer (another status, or INVALID_ARGUMENT without the field first)."""
    try:
        events = list(call)
    except grpc.RpcError as exc:
        code, msg = exc.code(), exc.details() or ""
        assert code in DOCUMENTED, f"undocumented status {code}: {msg}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert msg.startswith(FIELDS), f"INVALID_ARGUMENT that names no field first: {msg!r}"
        return code.name, msg
    assert events and events[-1].WhichOneof("event") == "done", "a stream that ended without Done or a status"
    return "ok", ""
