from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Rate(_message.Message):
    __slots__ = ("num", "den")
    NUM_FIELD_NUMBER: _ClassVar[int]
    DEN_FIELD_NUMBER: _ClassVar[int]
    num: int
    den: int
    def __init__(self, num: _Optional[int] = ..., den: _Optional[int] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("media_path", "source_in", "source_out", "record_in", "source_rate", "name")
    MEDIA_PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OUT_FIELD_NUMBER: _ClassVar[int]
    RECORD_IN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_RATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    media_path: str
    source_in: int
    source_out: int
    record_in: int
    source_rate: Rate
    name: str
    def __init__(self, media_path: _Optional[str] = ..., source_in: _Optional[int] = ..., source_out: _Optional[int] = ..., record_in: _Optional[int] = ..., source_rate: _Optional[_Union[Rate, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class Timeline(_message.Message):
    __slots__ = ("rate", "segments", "name")
    RATE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    rate: Rate
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    name: str
    def __init__(self, rate: _Optional[_Union[Rate, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., name: _Optional[str] = ...) -> None: ...

class GenerateOptions(_message.Message):
    __slots__ = ("style", "mood", "key", "bpm", "meter", "stems", "seed", "steps", "cfg", "prompt_path", "loudness_lufs", "preview", "energy", "energy_curve", "ending", "tail", "hits", "sections", "feel")
    STYLE_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    BPM_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CFG_FIELD_NUMBER: _ClassVar[int]
    PROMPT_PATH_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_LUFS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    ENERGY_CURVE_FIELD_NUMBER: _ClassVar[int]
    ENDING_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    FEEL_FIELD_NUMBER: _ClassVar[int]
    style: str
    mood: str
    key: str
    bpm: float
    meter: int
    stems: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    steps: int
    cfg: float
    prompt_path: str
    loudness_lufs: float
    preview: bool
    energy: str
    energy_curve: str
    ending: str
    tail: float
    hits: _containers.RepeatedScalarFieldContainer[str]
    sections: _containers.RepeatedScalarFieldContainer[float]
    feel: str
    def __init__(self, style: _Optional[str] = ..., mood: _Optional[str] = ..., key: _Optional[str] = ..., bpm: _Optional[float] = ..., meter: _Optional[int] = ..., stems: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., steps: _Optional[int] = ..., cfg: _Optional[float] = ..., prompt_path: _Optional[str] = ..., loudness_lufs: _Optional[float] = ..., preview: _Optional[bool] = ..., energy: _Optional[str] = ..., energy_curve: _Optional[str] = ..., ending: _Optional[str] = ..., tail: _Optional[float] = ..., hits: _Optional[_Iterable[str]] = ..., sections: _Optional[_Iterable[float]] = ..., feel: _Optional[str] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "timeline", "options", "output_name", "overwrite")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    timeline: Timeline
    options: GenerateOptions
    output_name: str
    overwrite: bool
    def __init__(self, request_id: _Optional[str] = ..., timeline: _Optional[_Union[Timeline, _Mapping]] = ..., options: _Optional[_Union[GenerateOptions, _Mapping]] = ..., output_name: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("stage", "fraction", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    fraction: float
    message: str
    def __init__(self, stage: _Optional[str] = ..., fraction: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class StemReady(_message.Message):
    __slots__ = ("stem", "path", "sample_rate", "bit_depth", "time_reference_samples", "samples")
    STEM_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    TIME_REFERENCE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    stem: str
    path: str
    sample_rate: int
    bit_depth: int
    time_reference_samples: int
    samples: int
    def __init__(self, stem: _Optional[str] = ..., path: _Optional[str] = ..., sample_rate: _Optional[int] = ..., bit_depth: _Optional[int] = ..., time_reference_samples: _Optional[int] = ..., samples: _Optional[int] = ...) -> None: ...

class TempoChange(_message.Message):
    __slots__ = ("sample", "beat", "bpm")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    BEAT_FIELD_NUMBER: _ClassVar[int]
    BPM_FIELD_NUMBER: _ClassVar[int]
    sample: int
    beat: float
    bpm: float
    def __init__(self, sample: _Optional[int] = ..., beat: _Optional[float] = ..., bpm: _Optional[float] = ...) -> None: ...

class TempoMap(_message.Message):
    __slots__ = ("beats_per_bar", "changes")
    BEATS_PER_BAR_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    beats_per_bar: int
    changes: _containers.RepeatedCompositeFieldContainer[TempoChange]
    def __init__(self, beats_per_bar: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[TempoChange, _Mapping]]] = ...) -> None: ...

class Beat(_message.Message):
    __slots__ = ("sample", "downbeat")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    DOWNBEAT_FIELD_NUMBER: _ClassVar[int]
    sample: int
    downbeat: bool
    def __init__(self, sample: _Optional[int] = ..., downbeat: _Optional[bool] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ("output_dir", "files", "tempo_map", "beats", "report_json", "accent_hit_rate")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TEMPO_MAP_FIELD_NUMBER: _ClassVar[int]
    BEATS_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    ACCENT_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    output_dir: str
    files: _containers.ScalarMap[str, str]
    tempo_map: TempoMap
    beats: _containers.RepeatedCompositeFieldContainer[Beat]
    report_json: str
    accent_hit_rate: float
    def __init__(self, output_dir: _Optional[str] = ..., files: _Optional[_Mapping[str, str]] = ..., tempo_map: _Optional[_Union[TempoMap, _Mapping]] = ..., beats: _Optional[_Iterable[_Union[Beat, _Mapping]]] = ..., report_json: _Optional[str] = ..., accent_hit_rate: _Optional[float] = ...) -> None: ...

class GenerateEvent(_message.Message):
    __slots__ = ("request_id", "progress", "stem_ready", "done")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEM_READY_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    progress: Progress
    stem_ready: StemReady
    done: Done
    def __init__(self, request_id: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., stem_ready: _Optional[_Union[StemReady, _Mapping]] = ..., done: _Optional[_Union[Done, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_queue", "max_timeline_seconds", "max_steps", "min_bpm", "max_bpm", "max_cfg")
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_TIMELINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_BPM_FIELD_NUMBER: _ClassVar[int]
    MAX_BPM_FIELD_NUMBER: _ClassVar[int]
    MAX_CFG_FIELD_NUMBER: _ClassVar[int]
    max_queue: int
    max_timeline_seconds: float
    max_steps: int
    min_bpm: float
    max_bpm: float
    max_cfg: float
    def __init__(self, max_queue: _Optional[int] = ..., max_timeline_seconds: _Optional[float] = ..., max_steps: _Optional[int] = ..., min_bpm: _Optional[float] = ..., max_bpm: _Optional[float] = ..., max_cfg: _Optional[float] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("version", "backends_available", "backend", "gpu", "engines", "styles", "moods", "stems", "limits", "model", "ready")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    MOODS_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    version: str
    backends_available: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    gpu: str
    engines: _containers.RepeatedScalarFieldContainer[str]
    styles: _containers.RepeatedScalarFieldContainer[str]
    moods: _containers.RepeatedScalarFieldContainer[str]
    stems: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    model: str
    ready: bool
    def __init__(self, version: _Optional[str] = ..., backends_available: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., gpu: _Optional[str] = ..., engines: _Optional[_Iterable[str]] = ..., styles: _Optional[_Iterable[str]] = ..., moods: _Optional[_Iterable[str]] = ..., stems: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., model: _Optional[str] = ..., ready: _Optional[bool] = ...) -> None: ...
