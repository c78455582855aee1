"""
report.py: the toy pipeline's results on one page, and the ablations behind the paper's claims.

`make toy` ends here: this script reads what the five stages left in runs/ and writes runs/report.md: one table of
each stage's headline numbers beside the paper's, each stage's details and figures, a first-person GIF of the final
agent, and the wall time of each stage (which the Makefile logs in runs/times.tsv) with the machine and day it ran on.

`make paper-figures` runs the ablations behind VPT's claims on top of make toy's outputs into runs/paper/ (a rerun
skips the runs that finished), then plots them the way the paper does:
    Fig. 3 left   IDM quality against hours of labelled contractor data        01 --sweep-hours
    Fig. 3 right  BC on IDM pseudo-labels against BC on the labelled data alone 04 --data data/contractor
    Fig. 8 left   zero-shot items against hours of pseudo-labelled video        04 --data-hours
    Fig. 9        zero-shot items against the IDM's hours of training data      03 + 04 with each sweep IDM
    Fig. 7        RL from scratch, from the early-game model (§4.3) without     04 --early-game, then 05 per arm
                  and with the KL term, and from the foundation policy with     and seed
                  it, three seeds each; then the early-game arms trained three
                  times longer (does forgetting show?), and with KL on
                  3,600-step episodes (does RL reach further?)

Commands:
    python report.py                          # runs/report.md (and runs/agent.gif) from what is in runs/
    python report.py --docs                   # also docs/results.md, its figures, and the README's headline table
    python report.py paper-figures            # the ablations (hours on 2 cores), then the report
    python report.py paper-figures --figure 7 --jobs 2   # Fig. 7 only, two runs at a time, each on half the cores
    python report.py paper-figures --smoke    # every ablation at smoke size: checks the machinery
    python report.py --smoke                  # the report of the smoke tree (runs/smoke/, after each stage's --smoke)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

import common
import worlds

ITEMS = common.ITEMS
RUNS = Path("runs")  # with --smoke, runs/smoke and data/smoke, where the stages' --smoke runs go
PAPER_RUNS = RUNS / "paper"
DATA = Path("data")
# the sizes each ablation is run at (toy hours); make toy's own runs add the largest point of each curve
IDM_HOURS = [0.05, 0.15, 0.3]  # Fig. 3 left and Fig. 9: below 01's default of 0.5 toy hours of contractor data
BC_HOURS = [0.15, 0.5]  # Fig. 8 left: below the pseudo-labelled hours that 02 keeps of its 4 toy hours of web video
DOCS = Path("docs")
SHOWN = ["log", "planks", "stick", "crafting_table", "wooden_pickaxe", "cobblestone", "stone_pickaxe"]


def load(path):
    """A stage's JSON output, or None where the stage has not run."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise common.UserError(f"{path}: not readable JSON ({e}); run again the stage that writes it") from None


def fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


# ---------------------------------------------------------------------------------------------------------------------
# The ablations (make paper-figures)
# ---------------------------------------------------------------------------------------------------------------------


RL_SEEDS = [0, 1, 2]  # Fig. 7: every arm over three seeds
EARLY_GAME_FRAMES = 2400  # Fig. 7 starts from the early game: the first 2 minutes of each contractor recording (§4.3)


def fig7_arms():
    """Fig. 7's arms: {label: (folder prefix, 05_rl.py flags)}. From scratch there is nothing to stay close to (no KL
    term); the early-game model is the paper's starting point for RL; the foundation arm is make toy's own 05 run,
    seeded again."""
    early, foundation = str(PAPER_RUNS / "bc_early_game" / "policy.pt"), str(RUNS / "bc" / "policy.pt")
    return {"from scratch": ("rl_scratch", ["--scratch", "--kl-coef", "0"]),
            "early game, no KL": ("rl_early_no_kl", ["--init", early, "--kl-coef", "0"]),
            "early game + KL": ("rl_early_kl", ["--init", early]),
            "foundation + KL": ("rl_foundation_kl", ["--init", foundation])}


# Two questions beyond the figure, each over Fig. 7's early-game arms:
# - does forgetting without the KL term show more reliably with more training? One pair (seed 0) at LONGER times 05's
#   steps. The KL weight decays by --kl-decay (0.99) every iteration; the longer run decays it by 0.99^(1/LONGER) so
#   that it follows the same schedule over its steps instead of losing the term in its first third.
# - does RL on longer episodes reach further? (§4.4 trains on 10-minute episodes, 12,000 steps; 05 on 1,200.) The
#   early-game arm with KL on EPISODE_STEPS-step episodes, every seed, each policy also evaluated on the other length.
LONGER, RL_STEPS, KL_DECAY, RL_EPISODE_STEPS = 3, 131_072, 0.99, 1200  # all but LONGER: 05's defaults
EPISODE_STEPS = 3600


def early_game_variants():
    """{label: (folder prefix, 05_rl.py flags, seeds)} of the runs behind the two questions above."""
    early = str(PAPER_RUNS / "bc_early_game" / "policy.pt")
    longer = ["--total-steps", str(LONGER * RL_STEPS)]
    return {f"early game, no KL, {LONGER}x steps": ("rl_early_no_kl_long", ["--init", early, "--kl-coef", "0",
                                                                           *longer], [0]),
            f"early game + KL, {LONGER}x steps": ("rl_early_kl_long", ["--init", early, *longer, "--kl-decay",
                                                                      f"{KL_DECAY ** (1 / LONGER):.4f}"], [0]),
            f"early game + KL, {EPISODE_STEPS:,}-step episodes": (
                f"rl_early_kl_ep{EPISODE_STEPS}", ["--init", early, "--episode-steps", str(EPISODE_STEPS)], RL_SEEDS)}


class Ablation(NamedTuple):
    what: str  # what it is for
    cmd: list  # the command
    done: Path  # the file it writes last
    needs: tuple = ()  # files that other runs write first
    figures: tuple = ()  # the figures it is for (report.py paper-figures --figure)


def ablation_runs():
    """Every run behind the paper's figures, in order."""
    py = [sys.executable]
    sweep = PAPER_RUNS / "idm_sweep" / "metrics.json"
    runs = [Ablation("Fig. 3 left: one IDM per data size", py + ["01_idm.py", "--sweep-hours", ",".join(
        map(str, IDM_HOURS)), "--out", str(sweep.parent)], sweep, figures=(3, 9))]
    for h in IDM_HOURS:
        label = PAPER_RUNS / f"label_{h:g}h" / "metrics.json"
        runs.append(Ablation(f"Fig. 9: label the web video with the {h} h IDM",
                             py + ["03_label.py", "--idm", str(sweep.parent / f"idm_{h:g}h.pt"),
                                   "--out", str(DATA / "paper" / f"labeled_{h:g}h"), "--run-dir", str(label.parent)],
                             label, (sweep,), (9,)))
        runs.append(Ablation(f"Fig. 9: clone a policy on the {h} h IDM's labels",
                             py + ["04_bc.py", "--data", str(DATA / "paper" / f"labeled_{h:g}h"), "--out",
                                   str(PAPER_RUNS / f"bc_idm_{h:g}h")],
                             PAPER_RUNS / f"bc_idm_{h:g}h" / "metrics.json", (label,), (9,)))
    runs.append(Ablation("Fig. 3 right: clone a policy on the contractor data alone",
                         py + ["04_bc.py", "--data", str(DATA / "contractor"), "--out",
                               str(PAPER_RUNS / "bc_contractor")],
                         PAPER_RUNS / "bc_contractor" / "metrics.json", figures=(3,)))
    for h in BC_HOURS:
        runs.append(Ablation(f"Fig. 8 left: clone a policy on {h} h of pseudo-labelled video",
                             py + ["04_bc.py", "--data-hours", str(h), "--out", str(PAPER_RUNS / f"bc_data_{h:g}h")],
                             PAPER_RUNS / f"bc_data_{h:g}h" / "metrics.json", figures=(8,)))
    # Fig. 7 starts from the early-game model (§4.3: the foundation policy fine-tuned on the contractors' first two
    # minutes), made once and shared by every early-game run
    early = PAPER_RUNS / "bc_early_game" / "metrics.json"
    runs.append(Ablation("Fig. 7: fine-tune the foundation policy on the early game (§4.3)",
                         py + ["04_bc.py", "--init", str(RUNS / "bc" / "policy.pt"), "--data", str(DATA / "contractor"),
                               "--early-game", str(EARLY_GAME_FRAMES), "--steps", "600", "--lr", "3e-4",
                               "--out", str(early.parent)], early, figures=(7,)))

    def rl(label, prefix, flags, seed):
        done = PAPER_RUNS / f"{prefix}_s{seed}" / "metrics.json"
        return Ablation(f"Fig. 7: RL {label}, seed {seed}", py + ["05_rl.py", *flags, "--seed", str(seed), "--out",
                                                                 str(done.parent)],
                        done, (early,) if "early" in prefix else (), (7,))

    for seed in RL_SEEDS:  # seed by seed, so that a partial run has every arm at the same number of seeds
        runs += [rl(label, prefix, flags, seed) for label, (prefix, flags) in fig7_arms().items()]
    runs += [rl(label, prefix, flags, seed) for label, (prefix, flags, seeds) in early_game_variants().items()
             for seed in seeds]
    # each policy of the episode-length question on the other length, on the worlds of its own final evaluation
    for prefix, length in [("rl_early_kl", EPISODE_STEPS), (f"rl_early_kl_ep{EPISODE_STEPS}", RL_EPISODE_STEPS)]:
        for seed in RL_SEEDS:
            policy = PAPER_RUNS / f"{prefix}_s{seed}" / "policy.pt"
            done = PAPER_RUNS / f"{prefix}_s{seed}_on_{length}" / "metrics.json"
            runs.append(Ablation(f"Fig. 7: evaluate {policy} on {length:,}-step episodes",
                                 py + ["04_bc.py", "--init", str(policy), "--steps", "0", "--episodes", "16",
                                       "--episode-steps", str(length), "--seed", str(seed), "--out", str(done.parent)],
                                 done, (policy.parent / "metrics.json",), (7,)))
    return runs


def run_ablations(smoke, figures=None, jobs=1):
    """Run every ablation (of `figures`; None: all) that has not finished yet, `jobs` at a time as soon as the runs
    they need have finished, logging each one's wall time to runs/paper/times.tsv. With jobs > 1 each run gets its
    share of the cores (OMP_NUM_THREADS, and 05's --env-workers) and writes its output to runs/paper/logs/."""
    if not (RUNS / "bc" / "policy.pt").exists() or not (DATA / "labeled").exists():
        raise common.UserError("paper-figures: run `make toy` first (the ablations build on its data and runs)"
                               if not smoke else "paper-figures --smoke: run each stage with --smoke first")
    PAPER_RUNS.mkdir(parents=True, exist_ok=True)
    pending = []
    for run in ablation_runs():
        if figures and not set(run.figures) & set(figures):
            continue
        if run.done.exists():
            print(f"=== paper-figures: {run.what}: done already ({run.done})")
            continue
        pending.append(run)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environ = {**os.environ, "OMP_NUM_THREADS": str(threads)} if jobs > 1 else None
    running, failed = {}, []  # {process: (run, start time, log file)}
    while pending or running:
        ready = [r for r in pending if all(n.exists() for n in r.needs)]
        while ready and len(running) < jobs and not failed:
            run = ready.pop(0)
            pending.remove(run)
            cmd = run.cmd + ["--smoke"] if smoke else list(run.cmd)
            if "03_label.py" not in cmd[1]:
                cmd += ["--overwrite"]  # an interrupted ablation starts over
            if jobs > 1 and "05_rl.py" in cmd[1]:
                cmd += ["--env-workers", str(threads)]
            elif jobs > 1 and "04_bc.py" in cmd[1]:
                cmd += ["--workers", str(threads)]
            log = None
            if jobs > 1:
                (PAPER_RUNS / "logs").mkdir(exist_ok=True)
                log = open(PAPER_RUNS / "logs" / f"{run.done.parent.name}.log", "w")
            said = f"\n    output: {log.name}" if log else ""
            print(f"=== paper-figures: {run.what}\n    {' '.join(cmd[1:])}{said}", flush=True)
            running[subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT if log else None, env=environ)] = (
                run, time.time(), log)
        if not running:
            if failed or not pending:
                break
            raise common.UserError(f"paper-figures: {pending[0].what} needs {', '.join(map(str, pending[0].needs))}, "
                                   f"which no run makes")
        finished = [proc for proc in running if proc.poll() is not None]
        if not finished:
            time.sleep(1)
            continue
        for proc in finished:
            run, start, log = running.pop(proc)
            if log:
                log.close()
            if proc.returncode != 0:
                failed.append((run, log))
                continue
            with open(PAPER_RUNS / "times.tsv", "a") as f:
                f.write(f"{run.done.parent.name}\t{time.time() - start:.0f}\n")
            if jobs > 1:
                print(f"=== paper-figures: {run.what}: done in {(time.time() - start) / 60:.1f} min", flush=True)
    if failed:
        run, log = failed[0]
        where_said = f"in {log.name}" if log else "above"
        raise common.UserError(f"paper-figures: {run.what} failed (its message is {where_said}); `make paper-figures` "
                               f"again goes on from there")


# ---------------------------------------------------------------------------------------------------------------------
# The figures, drawn like the paper's
# ---------------------------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def idm_points():
    """Held-out IDM scores by hours of labelled data, the sweep's IDMs and make toy's own, each with the metrics file
    of the policy cloned on its labels (key "bc"; Fig. 9)."""
    sweep = (load(PAPER_RUNS / "idm_sweep" / "metrics.json") or {}).get("sweep", [])
    # the sweep's idm_<h>h.pt labelled data/paper/labeled_<h>h, cloned into runs/paper/bc_idm_<h>h
    points = [dict(m, bc=PAPER_RUNS / f"bc_{Path(m['checkpoint']).stem}" / "metrics.json")
              for m in sweep if "checkpoint" in m]
    main = load(RUNS / "idm" / "metrics.json")
    if main:
        points.append(dict(main, bc=RUNS / "bc" / "metrics.json"))
    return sorted(points, key=lambda m: m["hours"])


def _log_axis(ax, xs):
    """A log x axis labelled at the data points themselves."""
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(xs, [f"{x:.2f}" for x in xs])


def plot_fig3_left(points, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    hours = [m["hours"] for m in points]
    for key, label, mark in [("button_accuracy", "keypress accuracy (mean of 20)", "^-"),
                             ("button_f1", "button F1 (mean)", "o-"), ("camera_accuracy", "camera-bin accuracy", "s-"),
                             ("camera_r2", "camera R$^2$", "d-")]:
        ax.plot(hours, [max(m[key], 0) for m in points], mark, label=label)
    ax.axhline(0.906, color="grey", lw=0.8, ls="--")
    ax.text(hours[0], 0.915, "paper: 90.6% keypress accuracy", fontsize=7, color="grey")
    _log_axis(ax, hours)
    ax.set(xlabel="hours of labelled contractor data", ylabel="held-out score", ylim=(0, 1.05),
           title="IDM quality against labelled data (Fig. 3 left)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bars(rates, path, title):
    """Item rates of several policies side by side (the paper's Fig. 3 right / Fig. 4 style)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(rates)
    for k, (label, r) in enumerate(rates.items()):
        ax.bar(np.arange(len(SHOWN)) + (k - (len(rates) - 1) / 2) * width, [r[i] for i in SHOWN], width, label=label)
    ax.set_xticks(np.arange(len(SHOWN)), [i.replace("_", " ") for i in SHOWN], fontsize=8)
    ax.set(ylabel="fraction of episodes", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_items_against(xs, rates, xlabel, path, title):
    """Item rates (one line per item) against a data size (the paper's Fig. 8 left / Fig. 9 style)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for j, item in enumerate(SHOWN):
        ys = [r[item] for r in rates]
        if any(ys):
            ax.plot(xs, ys, "o-", color=f"C{j}", label=item.replace("_", " "))
    _log_axis(ax, xs)
    ax.set(xlabel=xlabel, ylabel="fraction of episodes", ylim=(-0.02, 1.05), title=title)
    if ax.get_legend_handles_labels()[0]:  # no item at any size: no lines to name
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paper_figures():
    """Draw whichever of the five figures have their runs; return {figure: (png, markdown lines)} for the report."""
    out = {}
    points = idm_points()
    if len(points) > 1:
        plot_fig3_left(points, PAPER_RUNS / "fig3_left.png")
        rows = ["| labelled hours | keypress accuracy | button F1 | camera accuracy | camera R² |",
                "|---|---|---|---|---|"]
        rows += [f"| {m['hours']:.2f} | {m['button_accuracy']:.3f} | {m['button_f1']:.3f} | {m['camera_accuracy']:.3f} "
                 f"| {m['camera_r2']:.3f} |" for m in points]
        out["Fig. 3 left: IDM quality against labelled hours"] = ("paper/fig3_left.png", rows)
    web, contractor = load(RUNS / "bc" / "metrics.json"), load(PAPER_RUNS / "bc_contractor" / "metrics.json")
    if web and contractor and "item_rates" in web and "item_rates" in contractor:
        rates = {f"IDM-labelled web video ({web.get('train_hours') or 0:.2f} h)": web["item_rates"],
                 f"contractor data alone ({contractor.get('train_hours') or 0:.2f} h)": contractor["item_rates"]}
        plot_bars(rates, PAPER_RUNS / "fig3_right.png", "BC on IDM pseudo-labels vs the labelled data (Fig. 3 right)")
        out["Fig. 3 right: BC on IDM labels against BC on the labelled data alone"] = (
            "paper/fig3_right.png", _rates_table(rates))
    bc_data = [load(PAPER_RUNS / f"bc_data_{h:g}h" / "metrics.json") for h in BC_HOURS] + [web]
    bc_data = sorted([m for m in bc_data if m and "item_rates" in m and m.get("train_hours")],
                     key=lambda m: m["train_hours"])
    if len(bc_data) > 1:
        plot_items_against([m["train_hours"] for m in bc_data], [m["item_rates"] for m in bc_data],
                           "hours of pseudo-labelled web video", PAPER_RUNS / "fig8_left.png",
                           "Zero-shot items against BC data (Fig. 8 left)")
        out["Fig. 8 left: zero-shot items against hours of pseudo-labelled video"] = (
            "paper/fig8_left.png", _rates_table({f"{m['train_hours']:.2f} h": m["item_rates"] for m in bc_data}))
    by_idm = [(m["hours"], bc["item_rates"]) for m in points if "item_rates" in (bc := load(m["bc"]) or {})]
    if len(by_idm) > 1:
        plot_items_against([h for h, _ in by_idm], [r for _, r in by_idm], "hours of data the IDM was trained on",
                           PAPER_RUNS / "fig9.png", "BC quality against IDM training data (Fig. 9)")
        out["Fig. 9: zero-shot items against the IDM's training data"] = (
            "paper/fig9.png", _rates_table({f"IDM on {h:.2f} h": r for h, r in by_idm}))
    arms = fig7_results()
    if arms:
        plot_fig7(arms, PAPER_RUNS / "fig7.png")
        rows = fig7_rows(arms, load(PAPER_RUNS / "bc_early_game" / "metrics.json"))
        times = stage_times(PAPER_RUNS / "times.tsv")
        seconds = [t for name, t in times.items() if name == "bc_early_game" or name.startswith("rl_")]
        if seconds:
            rows += [f"Fig. 7's {len(seconds)} runs (the early-game model's and the RL runs) took "
                     f"{sum(seconds) / 3600:.1f} hours of run time in all; runs side by side (`--jobs`) each take "
                     f"longer than alone, and finish sooner together.", ""]
        out["Fig. 7: RL from scratch, from the early-game model without and with the KL term, from the foundation "
            "policy"] = ("paper/fig7.png", rows)
    early = load(PAPER_RUNS / "bc_early_game" / "metrics.json")
    longer = {label: [m] for label, (prefix, _, seeds) in early_game_variants().items()
              if prefix.endswith("_long") and (m := load(PAPER_RUNS / f"{prefix}_s{seeds[0]}" / "metrics.json"))}
    if longer:
        plot_fig7(longer, PAPER_RUNS / "fig7_longer.png")
        out[f"Fig. 7 trained {LONGER} times longer: does forgetting show?"] = ("paper/fig7_longer.png",
                                                                             longer_rows(longer, early))
    rows = episode_length_rows()
    if rows:
        out[f"Fig. 7 on {EPISODE_STEPS:,}-step episodes: does RL on longer episodes reach further?"] = (None, rows)
    return out


def longer_rows(longer, early):
    """The longer pair's final evaluation, and whether each run ended below half the early-game model's crafting-table
    rate (in its final evaluation, and in its last training episodes)."""
    rows = [f"One seed of each early-game arm, {LONGER * RL_STEPS:,} environment steps; final evaluation (16 episodes "
            f"of {RL_EPISODE_STEPS:,} steps), and the crafting-table rate of the training episodes: the last, and the "
            f"lowest after the first tenth of training (a run can lose the table and find it again):", "",
            "| run | mean return | " + " | ".join(i.replace("_", " ") for i in SHOWN) +
            " | table, last training | table, lowest in training |", "|---" * (len(SHOWN) + 4) + "|"]
    table = ITEMS.index("crafting_table")
    for label, (m,) in longer.items():
        steps, rates = np.array(m["history"]["env_steps"]), np.array(m["history"]["item_rates"])[:, table]
        low = int(np.argmin(np.where(steps > steps[-1] / 10, rates, np.inf)))
        rows.append(f"| {label} | {m['mean_return']:.2f} | " + " | ".join(f"{m['item_rates'][i]:.2f}" for i in SHOWN)
                    + f" | {rates[-1]:.2f} | {rates[low]:.2f} at {steps[low]:,} steps |")
    start = (early or {}).get("item_rates", {}).get("crafting_table")
    if start:
        said = []
        for label, (m,) in longer.items():
            below = [where for where, rate in table_ends(m).items() if rate < start / 2]
            said.append(f"{label}: {' and '.join(below) if below else 'neither'}")
        rows += ["", f"Ending below half the early-game model's table rate ({start:.2f}): " + "; ".join(said) + ".",
                 ""]
    return rows


def episode_length_rows():
    """RL on 1,200- and on EPISODE_STEPS-step episodes (the early-game arm with KL), each evaluated on both lengths:
    the mean over seeds and their range, from each run's own final evaluation and from 04's evaluation on the other
    length."""
    long_prefix = f"rl_early_kl_ep{EPISODE_STEPS}"
    short = RL_EPISODE_STEPS
    cells = [(short, short, "rl_early_kl_s{}"), (short, EPISODE_STEPS, f"rl_early_kl_s{{}}_on_{EPISODE_STEPS}"),
             (EPISODE_STEPS, short, f"{long_prefix}_s{{}}_on_{short}"),
             (EPISODE_STEPS, EPISODE_STEPS, long_prefix + "_s{}")]
    rows = []
    for trained, evaluated, name in cells:
        runs = finished_seeds(name)
        if runs:
            rows.append(f"| {trained:,} | {evaluated:,} | {len(runs)} | " +
                        " | ".join(_spread([m["item_rates"][i] for m in runs]) for i in SHOWN) + " |")
    if not any(r.startswith(f"| {EPISODE_STEPS:,} ") for r in rows):
        return []
    return ["The early-game model fine-tuned with the KL term on episodes of either length (the same environment "
            "steps in all), each policy evaluated on 16 episodes of both lengths; the mean over seeds, and their "
            "range:", "", "| trained on | evaluated on | seeds | " + " | ".join(i.replace("_", " ") for i in SHOWN)
            + " |", "|---" * (len(SHOWN) + 3) + "|", *rows, ""]


def finished_seeds(folder):
    """The metrics.json of each finished seed of runs/paper/<folder>, folder a format with a place for the seed."""
    return [m for seed in RL_SEEDS if (m := load(PAPER_RUNS / folder.format(seed) / "metrics.json"))]


def table_ends(m):
    """An RL run's crafting-table rate at its end, two ways: {final evaluation, last training episodes}. Two samples of
    16 episodes, so either can miss a policy that has lost the table."""
    return {"final evaluation": m["item_rates"]["crafting_table"],
            "last training episodes": m["history"]["item_rates"][-1][ITEMS.index("crafting_table")]}


def fig7_results():
    """{arm: [metrics.json of each of its finished seeds]}, the arms with at least one."""
    arms = {label: finished_seeds(prefix + "_s{}") for label, (prefix, _) in fig7_arms().items()}
    return {label: runs for label, runs in arms.items() if runs}


def plot_fig7(arms, path):
    """Fig. 7 as the paper draws it, over training: the episode return and the rates of the crafting table and the
    wooden pickaxe (the items where the arms part), each seed's curve faint and the arm's mean over seeds bold."""
    plt = _plt()
    panels = [("episode return", None), ("crafting table", "crafting_table"), ("wooden pickaxe", "wooden_pickaxe")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for k, (label, runs) in enumerate(arms.items()):
        n = min(len(m["history"]["env_steps"]) for m in runs)  # an interrupted seed never gets here: all equal
        steps = np.array(runs[0]["history"]["env_steps"][:n]) / 1000
        for ax, (_, item) in zip(axes, panels):
            curves = np.array([m["history"]["mean_return"][:n] if item is None else
                               np.array(m["history"]["item_rates"][:n])[:, ITEMS.index(item)] for m in runs], float)
            # before a run's first episode ends (its return NaN) it has no item rate either, not a rate of 0
            curves[np.isnan(np.array([m["history"]["mean_return"][:n] for m in runs], float))] = np.nan
            for curve in curves:
                ax.plot(steps, curve, color=f"C{k}", alpha=0.35, lw=0.8)
            with warnings.catch_warnings():  # before any episode has ended the return is NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                ax.plot(steps, np.nanmean(curves, axis=0), color=f"C{k}", lw=2,
                        label=f"{label} ({len(runs)} seed{'s' * (len(runs) > 1)})")
    for ax, (title, item) in zip(axes, panels):
        ax.set(xlabel="environment steps (thousands)", title=title,
               ylabel="mean return" if item is None else "fraction of training episodes")
        if item is not None:
            ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    fig.suptitle("RL fine-tuning (Fig. 7): each seed faint, the mean over seeds bold", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig7_rows(arms, early):
    """Fig. 7's tables, from each run's final evaluation: items and return per arm as the mean over seeds and their
    range; the funnel of where episodes stall; and what the arms say about forgetting and the KL term."""
    rows = ["Final evaluation of each run (16 episodes of 1,200 steps); the mean over seeds, and their range:", "",
            "| arm | seeds | mean return | " + " | ".join(i.replace("_", " ") for i in SHOWN) + " |",
            "|---" * (len(SHOWN) + 3) + "|"]
    for label, runs in arms.items():
        rows.append(f"| {label} | {len(runs)} | {_spread([m['mean_return'] for m in runs])} | " +
                    " | ".join(_spread([m["item_rates"][i] for m in runs]) for i in SHOWN) + " |")
    names = {"tables_crafted": "crafting tables crafted", "tables_placed": "crafting tables placed",
             "wooden_pickaxes_crafted": "wooden pickaxes crafted",
             "stone_hits_with_pickaxe": "steps hitting stone with a pickaxe in hand",
             "stone_hits_without_pickaxe": "steps hitting stone without one"}
    rows += ["", "Where the episodes stall: each per episode, the mean over seeds (a wooden pickaxe in hand mines "
             "stone into cobblestone, the way to the stone pickaxe; anything else in hand never does):", "",
             "| arm | " + " | ".join(names.values()) + " |", "|---" * (len(names) + 1) + "|"]
    for label, runs in arms.items():
        funnel = [m.get("funnel") or {} for m in runs]
        rows.append(f"| {label} | " + " | ".join(
            fmt(float(np.mean(v)), 2) if (v := [f[k] for f in funnel if f.get(k) is not None]) else "–"
            for k in names) + " |")
    rows += [""]
    # forgetting: an early-game run that ends crafting tables in less than half as many episodes as its start did,
    # in its final evaluation or in its last training episodes (table_ends)
    start = (early or {}).get("item_rates", {}).get("crafting_table")
    no_kl, kl = arms.get("early game, no KL", []), arms.get("early game + KL", [])
    if start and no_kl and kl:
        def forgot(m, in_training=False):
            return table_ends(m)["last training episodes" if in_training else "final evaluation"] < start / 2

        def count(runs):
            return (f"{sum(forgot(m) for m in runs)} of {len(runs)} seeds in the final evaluation and "
                    f"{sum(forgot(m, True) for m in runs)} of {len(runs)} in the last training episodes")

        kept = [m["mean_return"] for m in no_kl if not forgot(m) and not forgot(m, True)]
        lost = len(no_kl) - len(kept)
        with_kl = np.mean([m["mean_return"] for m in kl])
        typical = "typical" if lost > len(no_kl) / 2 else "not typical"
        cost = "." if not kept else (f"; and where nothing is forgotten the KL term "
                                     f"{'costs' if np.mean(kept) > with_kl else 'does not cost'} return.")
        rows += [f"**Forgetting.** The early-game model crafts a table in {start:.2f} of its episodes. Ending below "
                 f"half that: without the KL term {count(no_kl)}; with it {count(kl)}. " +
                 (f"The no-KL seeds that kept the table in both end with a mean return of {np.mean(kept):.2f} "
                  f"against {with_kl:.2f} with the KL term." if kept else
                  "No seed without the KL term kept the table in both."), "",
                 f"So at this budget forgetting without the KL term is {typical}: {lost} of {len(no_kl)} seeds, "
                 f"in one count or the other{cost}", ""]
    best = max((m["item_rates"]["stone_pickaxe"] for runs in arms.values() for m in runs), default=0.0)
    rows += [f"**Stone pickaxe.** The best of all {sum(map(len, arms.values()))} runs made one in {best:.2f} of its "
             f"evaluation episodes.", ""]
    return rows


def _spread(xs):
    """The mean of several seeds' numbers and their range (one seed: its number)."""
    return f"{np.mean(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})" if len(xs) > 1 else f"{xs[0]:.2f}"


def _rates_table(rates, extra=None):
    """A markdown table of item rates, one row per policy (and an optional mean-return column)."""
    head = "| | " + " | ".join(i.replace("_", " ") for i in SHOWN) + (" | mean return |" if extra else " |")
    rows = [head, "|---" * (len(SHOWN) + 1 + bool(extra)) + "|"]
    for label, r in rates.items():
        rows.append(f"| {label} | " + " | ".join(f"{r[i]:.2f}" for i in SHOWN) +
                    (f" | {extra[label]:.2f} |" if extra else " |"))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------------

STAGES = {"01_idm": "idm", "02_filter": "filter", "03_label": "label", "04_bc": "bc", "05_rl": "rl"}  # times -> runs/


def agent_gif(policy, path, steps=360, seed=1_000_000):
    """One first-person episode of a policy in an evaluation world (never recorded in): every third frame, 128 px,
    at 6.7 frames/s (a third of real time's 20)."""
    from PIL import Image

    _, _, frames = worlds.play_episodes((str(policy), "toy", [seed], steps, 1.0, True))
    clip = [Image.fromarray(f).resize((128, 128), Image.NEAREST) for f in frames[::3]]
    clip[0].save(path, save_all=True, append_images=clip[1:], duration=150, loop=0)
    return path


def stage_times(path):
    """Seconds of each stage's latest run, from the "<stage>\t<seconds>" lines appended to a times.tsv (by the
    Makefile for make toy, by run_ablations for make paper-figures). Lines of any other shape are passed over."""
    times = {}
    for line in (path.read_text().splitlines() if path.exists() else []):
        fields = line.split("\t")
        try:
            times[fields[0]] = int(float(fields[1]))
        except (IndexError, ValueError):
            continue
    return times


def run_of(metrics):
    """Where and when a run ran ({"machine", "date"}: common.run_info, kept in its metrics.json); None if the run did
    not say."""
    return metrics["run"] if isinstance(metrics, dict) and isinstance(metrics.get("run"), dict) else None


def where(info):
    return f"{info['machine']}, {info['date']}" if info else "not recorded"


def times_table(times, what, runs=None):
    """Minutes of each run, and the machine and day it ran on where its metrics say (runs: {run: metrics}); a run of
    `runs` with no time is named in the total's row, which leaves it out."""
    runs = runs or {}
    rows = [f"| {what} | minutes | measured on |", "|---|---|---|"]
    rows += [f"| {run} | {seconds / 60:.1f} | {where(run_of(runs.get(run))) if run in runs else ''} |"
             for run, seconds in times.items()]
    untimed = ", ".join(run for run, m in runs.items() if m and run not in times)
    note = f" without {untimed} (not timed) " if untimed else " "
    return rows + [f"| all | {sum(times.values()) / 60:.1f} |{note}|", ""]


def got(rates):
    return ", ".join(f"{i.replace('_', ' ')} {rates[i]:.2f}" for i in ITEMS if rates.get(i)) or "nothing"


def headline(runs):
    """The table of each stage's numbers next to the paper's."""
    idm, filt, label, bc, rl = (runs.get(k) or {} for k in ("idm", "filter", "label", "bc", "rl"))
    truth = filt.get("truth", {})
    return [
        "| stage | measure | toy | paper |",
        "|---|---|---|---|",
        f"| 01 IDM | keypress accuracy (mean over 20 buttons), held out | {fmt(idm.get('button_accuracy'))} | 0.906 |",
        f"| 01 IDM | button F1 (mean over buttons pressed) | {fmt(idm.get('button_f1'))} | not reported |",
        f"| 01 IDM | camera R² / camera-bin accuracy | {fmt(idm.get('camera_r2'))} / "
        f"{fmt(idm.get('camera_accuracy'))} | 0.97 / not reported |",
        f"| 02 filter | kept frames against the truth: accuracy / precision | {fmt(truth.get('accuracy'))} / "
        f"{fmt(truth.get('precision'))} | not reported (classifier on 8,800 labelled images) |",
        f"| 02 filter | fraction of web video kept | {fmt(filt.get('kept_fraction'))} | ~0.26 (70k of 270k hours) |",
        f"| 03 label | pseudo-labels against the truth: button F1 / camera accuracy | {fmt(label.get('button_f1'))} / "
        f"{fmt(label.get('camera_accuracy'))} | cannot be measured (no truth) |",
        f"| 04 BC | zero-shot items, {bc.get('episodes', '?')} episodes | {got(bc.get('item_rates', {}))} | chops "
        f"trees, crafts planks and crafting tables (Fig. 4) |",
        f"| 04 BC | random actions, same episodes | {got(bc.get('random_item_rates', {}))} | |",
        f"| 05 RL | items after RL with KL, {rl.get('episodes', '?')} episodes | {got(rl.get('item_rates', {}))} | "
        f"diamond pickaxe in 2.5% of episodes (Fig. 7) |",
    ]


def stage_details(runs):
    """A few lines per stage beyond the headline: what each measured, from its metrics.json."""
    idm, filt, label, bc, rl = (runs.get(k) or {} for k in ("idm", "filter", "label", "bc", "rl"))
    lines = []
    if idm:
        lines += ["### 01: the inverse dynamics model", "",
                  f"Trained on {idm.get('hours', 0):.2f} toy hours ({idm.get('frames', 0):,} frames), scored on "
                  f"{idm.get('eval_frames', 0):,} frames of held-out recordings, every frame counted. Camera-bin "
                  f"accuracy without a GUI open {fmt(idm.get('camera_accuracy_world'))}, with one "
                  f"{fmt(idm.get('camera_accuracy_gui'))} (there the mouse moves a small pointer, not the view).", "",
                  "| button | presses held out | F1 |", "|---|---|---|"]
        lines += [f"| {b} | {v['pressed']:,} | {v['f1']:.2f} |" for b, v in idm.get("per_button", {}).items()
                  if v["pressed"]]
        lines += [""]
    if filt:
        t = filt.get("truth", {})
        lines += ["### 02: the clean-video filter", "",
                  f"Held-out labelled frames ({filt.get('held_out_frames', 0):,}, whole videos held out): accuracy "
                  f"{fmt(filt.get('accuracy'))}, precision {fmt(filt.get('precision'))}, recall "
                  f"{fmt(filt.get('recall'))}. All {t.get('frames', 0):,} frames of web video against the hidden "
                  f"truth: accuracy {fmt(t.get('accuracy'))}, precision {fmt(t.get('precision'))}, recall "
                  f"{fmt(t.get('recall'))}; kept {fmt(filt.get('kept_fraction'))} of the video in "
                  f"{filt.get('segments', 0)} segments, where {fmt(t.get('clean_fraction'))} is truly clean.", ""]
    if label:
        held = label.get("idm_held_out") or {}
        lines += ["### 03: the pseudo-labels", "",
                  f"{label.get('frames', 0):,} frames in {label.get('segments', 0)} segments. Against the hidden "
                  f"truth: button F1 {fmt(label.get('button_f1'))}, camera-bin accuracy "
                  f"{fmt(label.get('camera_accuracy'))}, against the IDM's own held-out {fmt(held.get('button_f1'))} "
                  f"and {fmt(held.get('camera_accuracy'))}.", ""]
    if bc:
        lines += ["### 04: the foundation policy, zero-shot", "",
                  f"Cloned on {bc.get('train_hours') or 0:.2f} hours of pseudo-labelled video "
                  f"({bc.get('frames_trained', 0):,} frames trained on); held-out loss "
                  f"{fmt(bc.get('held_out_loss'))} nats a frame; share of evaluation steps in a GUI "
                  f"{fmt(bc.get('gui_fraction'), 2)}.", "",
                  *_rates_table({"BC policy": bc.get("item_rates", {}),
                                 "random actions": bc.get("random_item_rates", {})}), ""]
    if rl:
        lines += ["### 05: after RL with the KL term", "",
                  f"{rl.get('env_steps', 0):,} environment steps; mean return of the last training episodes "
                  f"{fmt(rl.get('mean_return'), 2)}; share of evaluation steps in a GUI "
                  f"{fmt(rl.get('gui_fraction'), 2)}.", "", *_rates_table({"RL policy": rl.get("item_rates", {})}), ""]
    return lines


def write_report(image_dir=None):
    """The report's markdown. image_dir None: images are linked where they lie in runs/ (runs/report.md); else they
    are copied into image_dir and linked relative to its parent (docs/results.md and docs/results/)."""
    runs = {k: load(RUNS / d / "metrics.json") for k, d in STAGES.items()}
    by_name = {d: runs[k] for k, d in STAGES.items()}
    times = stage_times(RUNS / "times.tsv")

    def image(rel, alt):
        src = RUNS / rel
        if not src.exists():
            return []
        if image_dir is None:
            return [f"![{alt}]({rel})", ""]
        dst = Path(image_dir) / rel.replace("/", "_")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        return [f"![{alt}]({dst.relative_to(Path(image_dir).parent).as_posix()})", ""]

    lines = ["## The toy pipeline's headline numbers", "", *headline(by_name), ""]
    if times:
        lines += ["Wall time of each stage (`make toy`):", "", *times_table(times, "stage", runs)]
    lines += ["## Each stage", "", *stage_details(by_name), "## Figures of each stage", ""]
    for rel, alt in [("agent.gif", "the final agent, first person"), ("idm/loss.png", "01: IDM training"),
                     ("filter/examples.png", "02: clean and unclean frames"),
                     ("bc/item_rates.png", "04: zero-shot item rates"), ("rl/training.png", "05: RL training")]:
        lines += image(rel, alt)
    figures = paper_figures() if PAPER_RUNS.exists() else {}
    if figures:
        lines += ["## The paper's ablations (`make paper-figures`)", "",
                  "Each policy but Fig. 7's is one training run, evaluated on 24 episodes, so an item rate moves by "
                  "about ±0.1 between runs; Fig. 7's arms are three seeds each.", ""]
        smoke = [c.parent.name for c in PAPER_RUNS.rglob("config.json") if (load(c) or {}).get("smoke")]
        if smoke:
            lines += [f"**Smoke-size runs** ({', '.join(sorted(set(smoke)))}): these check that the ablations run; "
                      f"their numbers mean nothing.", ""]
        for title, (png, rows) in figures.items():
            lines += [f"### {title}", "", *(image(png, title) if png else []), *rows, ""]
        paper_times = stage_times(PAPER_RUNS / "times.tsv")
        if paper_times:
            done = {run.done.parent.name: load(run.done) for run in ablation_runs()}
            lines += ["Wall time of each ablation run (`make paper-figures`, its latest run of each):", "",
                      *times_table(paper_times, "run", done)]
    return "\n".join(lines) + "\n"


def write_docs(text):
    """docs/results.md (the whole report), and the README's headline table between its results markers."""
    (DOCS / "results.md").write_text(
        "# Results\n\nWritten by `python report.py --docs` from the runs of `make toy` and `make paper-figures`; "
        "do not edit by hand. Each number is one run at the default flags; the machine and day of each run are in "
        "the tables of wall times.\n\n" + text)
    runs = {d: load(RUNS / d / "metrics.json") for d in STAGES.values()}
    measured = sorted({where(run_of(m)) for m in runs.values() if m})
    what = "the details of each stage and the paper's ablations" if PAPER_RUNS.exists() else \
        "the details of each stage (the paper's ablations once `make paper-figures` has run)"
    table = "\n".join(headline(runs)) + f"\n\nMeasured on {'; '.join(measured) or 'an unknown machine'}. Every " \
                                        f"figure, {what}: [docs/results.md](docs/results.md).\n"
    readme, start, end = Path("README.md"), "<!-- results:start -->", "<!-- results:end -->"
    body = readme.read_text()
    if start not in body or end not in body:
        raise common.UserError(f"{readme} has no {start} ... {end} markers")
    head, rest = body.split(start, 1)
    readme.write_text(head + start + "\n" + table + end + rest.split(end, 1)[1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="report", choices=["report", "paper-figures"])
    p.add_argument("--smoke", action="store_true", help="the smoke tree (runs/smoke/, data/smoke/); paper-figures: "
                   "every ablation at smoke size")
    p.add_argument("--docs", action="store_true", help="also write docs/results.md (figures in docs/results/) and "
                   "the README's headline table")
    p.add_argument("--gif-steps", type=common.count, default=360,
                   help="length of the final agent's GIF episode (0: no GIF)")
    p.add_argument("--figure", type=int, action="append", choices=[3, 7, 8, 9], help="paper-figures: only the runs "
                   "of this figure (repeat it for more; default: all)")
    p.add_argument("--jobs", type=common.positive_int, default=1, help="paper-figures: runs at a time, each on its "
                   "share of the cores (on 2 cores, 2 jobs finish the RL runs of Fig. 7 sooner than 1)")
    args = p.parse_args()
    if args.smoke:
        global RUNS, PAPER_RUNS, DATA
        RUNS, DATA = common.smoke_path(RUNS), common.smoke_path(DATA)
        PAPER_RUNS = RUNS / "paper"
    if args.command == "paper-figures":
        run_ablations(args.smoke, args.figure, args.jobs)
    policy = next((p for p in (RUNS / "rl" / "policy.pt", RUNS / "bc" / "policy.pt") if p.exists()), None)
    if policy is not None and args.gif_steps > 0:
        agent_gif(policy, RUNS / "agent.gif", steps=args.gif_steps)
    (RUNS / "report.md").write_text("# nanoVPT toy report\n\n" + write_report())
    print(f"-> {RUNS / 'report.md'}")
    if args.docs:
        write_docs(write_report(image_dir=DOCS / "results"))
        print(f"-> {DOCS / 'results.md'}, {DOCS / 'results'}/, README.md")


if __name__ == "__main__":
    common.run_main(main)
