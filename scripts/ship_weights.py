"""Copy a trained checkpoint into weights/ as the shipped model, with the evaluation's CFG.

    python scripts/ship_weights.py --final runs/ship-cpu/final --eval report/eval.json --out weights/muvi
    python scripts/ship_weights.py --final weights/muvi --eval report/eval.json   # re-evaluated, re-calibrated

Loads the run's final checkpoint strictly, sets ``recipe.default_cfg`` to the CFG scale the
evaluation's sweep recommended (what `muvi generate` uses when --cfg is not given) and, when the
evaluation ran with ``--calibrate``, the model's sampling note odds to the calibrated value, records how
it was trained (steps per stage, wall time from train_log.csv, hardware), and saves it as
float32 safetensors shards (≤ 60 MiB each) + config.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muvi.weights import load_checkpoint, save_checkpoint  # noqa: E402


def _training_facts(run: Path, stages_cfg: list[dict[str, object]]) -> dict[str, object]:
    """Steps, wall time and last loss per stage, from the run's train_log.csv; for a run that
    continued a finished checkpoint (``muvi train --continue-from``, continued_from.json), that
    checkpoint's recorded stages first and the log's rows from the stage after them.

    Rows are matched to the recipe's stages in order, so a stage name used twice (a continued
    conditional stage) is reported twice. A stage ends when its last step (steps − 1) is logged,
    which the trainer always does; a step that goes back otherwise is a resumed run, whose clock
    restarts."""
    out: list[dict[str, object]] = []
    earlier: list[dict[str, object]] = []
    si = 0
    continued = run / "continued_from.json"
    if continued.is_file():
        record = json.loads(continued.read_text())
        si = int(record["stages"])
        earlier = ((record.get("trained") or {}).get("stages") or [])[:si]
    log = run / "train_log.csv"
    if log.is_file():
        with open(log) as fh:
            rows = list(csv.DictReader(fh))
        cur = None
        for row in rows:
            step, secs = int(row["step"]), float(row["seconds"])
            while si < len(stages_cfg) and stages_cfg[si]["name"] != row["stage"]:
                si += 1
            if si >= len(stages_cfg):
                raise SystemExit(f"{log}: a row of stage {row['stage']!r} matches no stage of the recipe")
            if cur is None or cur["index"] != si:
                cur = {"index": si, "stage": row["stage"], "steps": int(stages_cfg[si]["steps"]),
                       "batch": int(stages_cfg[si]["batch"]), "seconds": 0.0, "_prev": 0.0}
                out.append(cur)
            if secs < cur["_prev"]:
                cur["seconds"] += cur["_prev"]
            cur["_prev"], cur["last_loss"] = secs, float(row["loss"])
            if step == int(stages_cfg[si]["steps"]) - 1:
                si += 1  # finished: the next row with this name belongs to a later stage
        for s in out:
            s["seconds"] = round(s.pop("seconds") + s.pop("_prev"), 1)
    return {"stages": earlier + out, "hardware": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU",
            "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--final", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True, help="eval.json of `muvi eval` on --final")
    ap.add_argument("--out", type=Path, default=Path("weights/muvi"))
    ap.add_argument("--default-cfg", type=float, default=None,
                    help="ship this CFG instead of the evaluation's pick (say why with --why; it is recorded)")
    ap.add_argument("--why", default="", help="the reason for --default-cfg (kept in recipe.default_cfg_reason)")
    args = ap.parse_args()
    if args.default_cfg is not None and not args.why:
        ap.error("--default-cfg needs --why")
    model, meta = load_checkpoint(args.final)
    report = json.loads(args.eval.read_text())
    recipe = dict(meta.get("recipe", {}))
    recipe["default_cfg"] = float(report["recommended_cfg"])
    recipe["default_cfg_reason"] = f"the evaluation's pick on held-out synthetic pairs ({args.eval.name})"
    if args.default_cfg is not None:
        recipe["default_cfg"], recipe["default_cfg_reason"] = args.default_cfg, args.why
    if report.get("calibration"):  # the sampling note odds the evaluation calibrated and measured with
        model.with_note_odds(report["note_odds"])
    if (args.final.parent / "train_log.csv").is_file():
        recipe["trained"] = _training_facts(args.final.parent, list(recipe.get("stages", [])))
    # else: the shipped weights themselves, re-evaluated (a decoding change): their recorded training stays
    rows = {name: {k: v for k, v in row.items() if not isinstance(v, list)}  # not the per-window lists
            for name, row in report["rows"].items()}
    recipe["evaluation"] = {"targets": report["targets"], "rows": rows, "windows": report["windows"],
                            "sim_margins": report.get("sim_margins", {})}
    save_checkpoint(args.out, model, recipe=recipe, data_manifest_sha256=meta.get("data_manifest_sha256"))
    load_checkpoint(args.out)  # strict round trip
    print(f"shipped {args.final} → {args.out} (default CFG {recipe['default_cfg']}, "
          f"note odds {model.config.sampling_note_odds:g})")
    print(json.dumps(recipe["trained"], indent=1))


if __name__ == "__main__":
    main()
