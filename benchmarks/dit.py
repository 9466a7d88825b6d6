"""DiT sampling speed: one 25-step CFG run for 60 s of music at 120 BPM (480 grid steps).

Target (issue 4): the shipped preset samples 60 s of music in ≤ 10 s on the 2-core CPU.
Prints JSON with parameters and per-preset timings.

    python benchmarks/dit.py [--presets compact small] [--steps 25] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402
from muvi.flow import guided_velocity, sample  # noqa: E402
from muvi.nn.model import ModelConfig, MuVi  # noqa: E402
from muvi.nn.presets import preset  # noqa: E402

SHIPPED = "compact"


def run(name: str, steps: int, n_steps: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    model = MuVi(ModelConfig(dit=preset(name))).to(device).eval()
    for p in model.parameters():  # realistic activations: no zero-initialised shortcuts
        if torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.02)
    f = model.token_dim
    w = model.config.dit.width
    cond = (torch.randn(1, n_steps, w, device=device), torch.randn(1, w, device=device))
    unc = (torch.randn(1, n_steps, w, device=device), torch.randn(1, w, device=device))
    prompt = torch.zeros(1, n_steps, f, device=device)
    mask = torch.zeros(1, n_steps, 1, device=device)
    fn = guided_velocity(model.dit.velocity, cond=cond, uncond=unc, scale=3.0, prompt=prompt, prompt_mask=mask)
    noise = torch.randn(1, n_steps, f, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        sample(fn, noise, steps=2)  # warm-up
        times = []
        for _ in range(2):
            t = time.perf_counter()
            sample(fn, noise, steps=steps)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        one = fn(noise, torch.zeros(1, device=device))
        step_s = time.perf_counter() - t
    return {"parameters_dit_M": round(model.n_parameters("dit") / 1e6, 2),
            "parameters_total_M": round(model.n_parameters() / 1e6, 2),
            "sampling_s": round(min(times), 3), "one_cfg_step_s": round(step_s, 4), "out_shape": list(one.shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=[SHIPPED])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_steps = 480  # 60 s at 120 BPM, 4 steps per beat
    results = {name: run(name, args.steps, n_steps, args.device) for name in args.presets}
    emit({
        "benchmark": "dit_sampling",
        "music_seconds": 60, "bpm": 120, "grid_steps": n_steps, "sampler_steps": args.steps, "cfg": True,
        "device": args.device, "torch_threads": torch.get_num_threads(), "presets": results,
        "shipped_preset": SHIPPED, "target_s": 10.0,
        "meets_target": results.get(SHIPPED, {}).get("sampling_s", 1e9) <= 10.0,
        "machine": machine(),
    }, "dit")


if __name__ == "__main__":
    main()
