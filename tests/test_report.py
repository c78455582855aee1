"""report.py's paper-figures: the runs it schedules, and Fig. 7 over seeds."""

import json
import sys

import pytest

import common
import report


def _rl_metrics(table, ret, train_end=0.5, steps=(1024, 2048, 3072)):
    rates = {i: 0.0 for i in common.ITEMS}
    rates.update(log=1.0, crafting_table=table)
    curve = [[0.0] * len(common.ITEMS) for _ in steps]
    curve[-1][common.ITEMS.index("crafting_table")] = train_end
    return {"item_rates": rates, "mean_return": ret, "run": {"machine": "m", "date": "d"},
            "funnel": {"tables_crafted": 2 * table, "tables_placed": table, "wooden_pickaxes_crafted": 0.0,
                       "stone_hits_with_pickaxe": 0.0, "stone_hits_without_pickaxe": 5.0},
            "history": {"env_steps": list(steps), "mean_return": [float("nan"), 0.5, ret], "item_rates": curve}}


def test_fig7_states_forgetting_over_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paper = report.PAPER_RUNS
    # (final crafting-table rate, mean return, crafting-table rate of the last training episodes) per seed
    arms = {"rl_early_no_kl": [(0.1, 0.6, 0.5), (0.8, 2.0, 0.5)],
            "rl_early_kl": [(0.9, 1.7, 0.5), (0.5, 1.5, 0.1), (0.7, 1.6, 0.5)], "rl_scratch": [(0.0, 0.0, 0.0)]}
    for prefix, seeds in arms.items():
        for seed, (table, ret, train_end) in enumerate(seeds):
            (paper / f"{prefix}_s{seed}").mkdir(parents=True)
            (paper / f"{prefix}_s{seed}" / "metrics.json").write_text(json.dumps(_rl_metrics(table, ret, train_end)))
    (paper / "bc_early_game").mkdir()
    (paper / "bc_early_game" / "metrics.json").write_text(json.dumps({"item_rates": {"crafting_table": 0.48}}))
    (paper / "times.tsv").write_text("bc_early_game\t1800\nidm_sweep\t999\nrl_early_kl_s0\t1800\n")
    (png, rows), = [v for k, v in report.paper_figures().items() if k.startswith("Fig. 7")]
    assert (tmp_path / "runs" / png).exists()
    text = "\n".join(rows)
    # the arms in fig7_arms' order, each the mean over its seeds and their range; an arm with no run is left out
    table = [r for r in rows if r.startswith("| ") and "seeds" not in r and "crafted" not in r]
    assert [r.split(" | ")[0] for r in table[:3]] == ["| from scratch", "| early game, no KL", "| early game + KL"]
    assert "| early game + KL | 3 | 1.60 (1.50-1.70) |" in text and "| from scratch | 1 | 0.00 |" in text
    assert "| early game, no KL | 0.90 | 0.45 | 0.00 | 0.00 | 5.00 |" in text  # the funnel: the mean of its seeds
    # below half of 0.48: one no-KL seed (0.1) in its evaluation, no KL seed (0.5 is above 0.24); in training, the
    # KL seed whose curve ends at 0.1; the no-KL seed that kept the table in both, and its return
    assert ("Ending below half that: without the KL term 1 of 2 seeds in the final evaluation and 0 of 2 in the last "
            "training episodes; with it 0 of 3 seeds in the final evaluation and 1 of 3 in the last training "
            "episodes.") in text
    assert "mean return of 2.00 against 1.60 with the KL term" in text
    assert ("forgetting without the KL term is not typical: 1 of 2 seeds, in one count or the other; and where "
            "nothing is forgotten the KL term costs return.") in text
    assert "Fig. 7's 2 runs (the early-game model's and the RL runs) took 1.0 hours" in text  # not the sweep's


def test_fig7_longer_pair_and_episode_lengths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paper = report.PAPER_RUNS

    def write(name, table, train_end=0.5, middle=0.0):
        m = _rl_metrics(table, 1.0, train_end, steps=(1000, 20000, 30000))
        m["history"]["item_rates"][1][common.ITEMS.index("crafting_table")] = middle
        (paper / name).mkdir(parents=True)
        (paper / name / "metrics.json").write_text(json.dumps(m))
    (paper / "bc_early_game").mkdir(parents=True)
    (paper / "bc_early_game" / "metrics.json").write_text(json.dumps({"item_rates": {"crafting_table": 0.48}}))
    write("rl_early_no_kl_long_s0", 0.1, train_end=0.2, middle=0.3)  # below 0.24 both ways
    write("rl_early_kl_long_s0", 0.3, train_end=0.1)  # only in training
    n = report.EPISODE_STEPS
    assert not any("episodes: does RL" in k for k in report.paper_figures())  # no run on longer episodes yet
    for seed, table in enumerate([0.5, 0.7]):  # trained on 1,200 steps, evaluated on 1,200 (05's own) and on n
        write(f"rl_early_kl_s{seed}", table)
        write(f"rl_early_kl_s{seed}_on_{n}", table + 0.2)
    write(f"rl_early_kl_ep{n}_s0", 0.9)  # trained on n, one seed so far, not yet evaluated on 1,200
    figures = report.paper_figures()
    (png, rows), = [v for k, v in figures.items() if "times longer" in k]
    assert (tmp_path / "runs" / png).exists()
    text = "\n".join(rows)
    # the lowest table rate in training leaves out its first tenth (the history's table rates: 0 at 1,000 steps,
    # 0.3 at 20,000, 0.2 at 30,000)
    assert "| early game, no KL, 3x steps | 1.00 | 1.00 | 0.00 | 0.00 | 0.10 |" in text
    assert "| early game, no KL, 3x steps |" in text and "| 0.20 | 0.20 at 30,000 steps |" in text
    assert "| 0.10 | 0.00 at 20,000 steps |" in text  # the KL run
    assert text.rstrip().endswith("): early game, no KL, 3x steps: final evaluation and last training episodes; "
                                  "early game + KL, 3x steps: last training episodes.")
    (png, rows), = [v for k, v in figures.items() if "episodes: does RL" in k]
    crafting = [r.split(" | ")[SHOWN_TABLE] for r in rows if r.startswith("| ") and "seeds" not in r]
    # (trained, evaluated) rows in order; the mean of seeds and their range; a cell with no run left out
    assert [r.split(" | ")[:3] for r in rows if r.startswith("| 1") or r.startswith("| 3")] == [
        ["| 1,200", "1,200", "2"], ["| 1,200", f"{n:,}", "2"], [f"| {n:,}", f"{n:,}", "1"]]
    assert crafting == ["0.60 (0.50-0.70)", "0.80 (0.70-0.90)", "0.90"]


SHOWN_TABLE = 3 + report.SHOWN.index("crafting_table")  # the crafting-table column of the episode-length table


def _runs(tmp_path, fail=False):
    """Three stand-in runs: b needs a's file; c fails if asked. Each appends its name to order.txt as it starts."""
    def run(name, needs=(), code=0):
        done = tmp_path / name / "metrics.json"
        script = (f"import pathlib, time; open(r'{tmp_path / 'order.txt'}', 'a').write('{name} '); "
                  f"time.sleep({0 if code else 0.5}); p = pathlib.Path(r'{done}'); p.parent.mkdir(exist_ok=True); "
                  f"p.write_text('{{}}'); raise SystemExit({code})")
        return report.Ablation(name, [sys.executable, "-c", script], done, tuple(needs), (7,))
    a = run("a")
    return [run("b", needs=[a.done]), a, run("c", code=3 if fail else 0)]


def test_paper_figures_runs_each_after_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "bc").mkdir(parents=True)
    (tmp_path / "runs" / "bc" / "policy.pt").write_text("")
    (tmp_path / "data" / "labeled").mkdir(parents=True)
    runs = _runs(tmp_path)
    monkeypatch.setattr(report, "ablation_runs", lambda: runs)
    report.run_ablations(False, [7], jobs=2)
    # b is first in the list but waits for a; two at a time: a and c start together, b after a
    assert (tmp_path / "order.txt").read_text().split() in (["a", "c", "b"], ["c", "a", "b"])
    assert set(report.stage_times(report.PAPER_RUNS / "times.tsv")) == {"a", "b", "c"}
    assert (report.PAPER_RUNS / "logs" / "c.log").exists()  # jobs > 1: each run's output in a log of its own
    report.run_ablations(False, [3], jobs=2)  # another figure's runs: none of these
    report.run_ablations(False, [7], jobs=1)  # all done: nothing runs again
    assert len((tmp_path / "order.txt").read_text().split()) == 3


def test_paper_figures_stops_on_a_failed_run_and_names_its_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "bc").mkdir(parents=True)
    (tmp_path / "runs" / "bc" / "policy.pt").write_text("")
    (tmp_path / "data" / "labeled").mkdir(parents=True)
    runs = _runs(tmp_path, fail=True)
    monkeypatch.setattr(report, "ablation_runs", lambda: runs)
    with pytest.raises(common.UserError, match=r"c failed \(its message is in runs/paper/logs/c.log\)"):
        report.run_ablations(False, None, jobs=2)
    # the run beside it finishes (no running work is thrown away), and none starts after the failure
    assert set(report.stage_times(report.PAPER_RUNS / "times.tsv")) == {"a"}
    assert (tmp_path / "order.txt").read_text().split() in (["a", "c"], ["c", "a"])
