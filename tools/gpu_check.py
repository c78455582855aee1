"""make gpu-check: the whole toy chain on a GPU, then the paper-size models' training step, in one command.

    python tools/gpu_check.py                              # CUDA, default sizes, bf16, --compile where a stage has it
    python tools/gpu_check.py --device cpu --smoke         # the same path at smoke size on the CPU (what CI runs)

Each stage runs as a user would run it (01 -> 05, their default hand-off paths) in a scratch folder (--workdir, default
a new temporary one), so that make toy's runs/ and data/ are never touched. It prints each stage's wall time, its
throughput (frames or environment steps per second, from the stage's own metrics.json) and, on a GPU, its peak
memory; then tools/bench.py's training-step benchmark of OpenAI's 1x policy and 4x IDM (the toy presets at smoke
size). Any stage that fails stops the check with its last lines and a non-zero exit.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["01_idm.py", "02_filter.py", "03_label.py", "04_bc.py", "05_rl.py"]
COMPILES = {"01_idm.py", "04_bc.py", "05_rl.py"}  # the stages with a --compile flag
BENCHMARKS = [("policy", "1x", "8"), ("idm", "4x", "2")]  # kind, preset, batch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu")
    p.add_argument("--smoke", action="store_true", help="every stage at smoke size (seconds each)")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    return p.parse_args(argv)


def run(cmd, cwd, what):
    """Run one command; on failure print its last lines and stop the check."""
    t0 = time.time()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.time() - t0
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-25:])
        print(f"gpu-check: {what} failed (exit {out.returncode}) after {seconds:.0f} s:\n{tail}", file=sys.stderr)
        raise SystemExit(1)
    return seconds, out.stdout


def throughput(stage, runs):
    """Frames (or environment steps) per second, from what the stage wrote; None where it says nothing of it."""
    folder = {"01_idm.py": "idm", "02_filter.py": "filter", "03_label.py": "label", "04_bc.py": "bc",
              "05_rl.py": "rl"}[stage]
    try:
        metrics = json.loads((runs / folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None, None
    peak = metrics.get("run", {}).get("peak_gpu_mib")
    if stage == "01_idm.py":
        config = json.loads((runs / folder / "config.json").read_text())
        clip = config["clip"] or config["net_args"]["timesteps"]  # --clip's default: the preset's window
        rate = config["steps"] * config["batch"] * clip / max(metrics["train_seconds"], 1e-3)
    elif stage == "05_rl.py":
        rate = metrics["env_steps"] / max(metrics["train_seconds"], 1e-3)
    else:
        rate = metrics.get({"02_filter.py": "score_frames_per_second", "03_label.py": "frames_per_second",
                            "04_bc.py": "train_frames_per_second"}[stage])
    return rate, peak


def main():
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nanovpt-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cuda = args.device.startswith("cuda")
    runs = workdir / "runs" / ("smoke" if args.smoke else "")
    print(f"gpu-check: {args.device}{', smoke size' if args.smoke else ''}, in {workdir}")
    print(f"{'stage':14} {'wall s':>8} {'per s':>10} {'peak MiB':>9}")
    total = 0.0
    for stage in STAGES:
        cmd = [sys.executable, str(ROOT / stage), "--device", args.device]
        if stage != "02_filter.py":  # 02's classifier is small: it has no --bf16
            cmd += ["--bf16", "on" if cuda else "auto"]
        if cuda and stage in COMPILES:
            cmd.append("--compile")
        if args.smoke:
            cmd.append("--smoke")
        seconds, _ = run(cmd, workdir, stage)
        total += seconds
        rate, peak = throughput(stage, runs)
        rate = f"{rate:10.0f}" if rate is not None else f"{'-':>10}"
        peak = f"{peak:9.0f}" if peak is not None else f"{'-':>9}"
        print(f"{stage:14} {seconds:8.1f} {rate} {peak}", flush=True)
    print(f"{'chain':14} {total:8.1f}")
    for kind, preset, batch in BENCHMARKS:
        preset, batch = ("toy", "2") if args.smoke else (preset, batch)
        cmd = [sys.executable, str(ROOT / "tools" / "bench.py"), "model", "--kind", kind, "--preset", preset,
               "--batch", batch, "--device", args.device, "--bf16", "on" if cuda else "off", "--repeats", "2"]
        if args.smoke:
            cmd += ["--timesteps", "8"]
        _, out = run(cmd, workdir, f"bench.py model --kind {kind} --preset {preset}")
        print(f"bench {kind} {preset} (batch {batch}):\n{out.rstrip()}", flush=True)
    print("gpu-check: passed")


if __name__ == "__main__":
    main()
