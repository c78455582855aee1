"""Every script runs end to end in its smoke configuration, each reading the one before it."""

import json
import subprocess
import sys

import pytest

import common
import worlds
from conftest import ROOT


@pytest.mark.slow
def test_idm_trains_under_torchrun_with_two_processes(tmp_path):
    # DistributedDataParallel on CPU (gloo): each rank reads its own recordings; rank 0 evaluates and saves
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          str(ROOT / "01_idm.py"), "--smoke", "--out", str(tmp_path / "runs")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = (tmp_path / "runs" / "metrics.json").read_text()
    assert '"world_size": 2' in (tmp_path / "runs" / "config.json").read_text() and "button_f1" in metrics


def test_chain_of_stages(tmp_path):
    runs, data = tmp_path / "runs" / "smoke", tmp_path / "data" / "smoke"  # --smoke never writes where make toy does
    # 01 -> 05 with their default hand-off paths, as make toy runs them (moved into the smoke tree), through make
    # gpu-check's CPU smoke (which CI must keep working), then the report
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--device", "cpu", "--smoke",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and "gpu-check: passed" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert [line.split()[0] for line in out.stdout.splitlines() if line.startswith("0")] == [
        "01_idm.py", "02_filter.py", "03_label.py", "04_bc.py", "05_rl.py"]
    assert not (tmp_path / "runs" / "idm").exists() and not (tmp_path / "data" / "contractor").exists()
    (runs / "times.tsv").write_text("01_idm\t61\n05_rl\t30\n05_rl\t29\n")
    (tmp_path / "README.md").write_text("# x\n<!-- results:start -->\nold table\n<!-- results:end -->\nrest\n")
    (tmp_path / "docs").mkdir()
    out = subprocess.run([sys.executable, str(ROOT / "report.py"), "--smoke", "--gif-steps", "10", "--docs"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    filtered = json.loads((runs / "filter" / "metrics.json").read_text())
    assert {"accuracy", "precision", "recall", "kept_fraction"} <= set(filtered) and "truth" in filtered
    labelled = json.loads((runs / "label" / "metrics.json").read_text())
    assert labelled["frames"] > 0 and {"button_f1", "camera_accuracy", "frames_per_second"} <= set(labelled)
    # the pseudo-labels load like contractor data
    episodes = [common.load_contractor_episode(p, size=64, skip_null=False)
                for p in common.find_recordings(data / "labeled")]
    assert len(episodes) == labelled["segments"] and sum(len(e) for e in episodes) == labelled["frames"]
    cloned = json.loads((runs / "bc" / "metrics.json").read_text())
    assert set(cloned["item_rates"]) == set(common.ITEMS) and cloned["episodes"] == 2
    assert (runs / "bc" / "policy.pt").exists() and (runs / "bc" / "rollout.mp4").exists()
    reinforced = json.loads((runs / "rl" / "metrics.json").read_text())
    assert set(reinforced["item_rates"]) == set(common.ITEMS) and reinforced["env_steps"] == 64
    # Fig. 7's curves over training (two iterations of 2 envs x 16 steps) and the funnel, counted from ToyCraft's info
    assert reinforced["history"]["env_steps"] == [32, 64] and len(reinforced["history"]["item_rates"][0]) == 15
    assert sorted(reinforced["funnel"]) == sorted(worlds.FUNNEL) and None not in reinforced["funnel"].values()
    assert (runs / "rl" / "training.png").exists()
    report = (runs / "report.md").read_text()
    idm = json.loads((runs / "idm" / "metrics.json").read_text())
    assert f"| {idm['button_accuracy']:.3f} | 0.906 |" in report  # the IDM's number beside the paper's
    # a stage's latest time counts, beside the machine and day its metrics say it ran on
    on = reinforced["run"]
    assert f"| 05_rl | 0.5 | {on['machine']}, {on['date']} |" in report
    assert "| all | 1.5 | without 02_filter, 03_label, 04_bc (not timed) |" in report  # they ran, and have no time
    assert "![04: zero-shot item rates](bc/item_rates.png)" in report and (runs / "agent.gif").exists()
    # --docs: the same report in docs/results.md with its figures beside it, and the README's headline table
    results = (tmp_path / "docs" / "results.md").read_text()
    assert "![04: zero-shot item rates](results/bc_item_rates.png)" in results
    assert (tmp_path / "docs" / "results" / "bc_item_rates.png").exists()
    readme = (tmp_path / "README.md").read_text()
    assert "old table" not in readme and f"| {idm['button_accuracy']:.3f} | 0.906 |" in readme
    assert readme.startswith("# x\n") and readme.endswith("<!-- results:end -->\nrest\n")


@pytest.mark.slow
def test_bc_trains_under_torchrun_with_two_processes(tmp_path):
    # each rank streams its own share of the recordings; rank 0 evaluates and saves
    import toycraft

    toycraft.record_contractors(tmp_path / "data", 4, seed=0, max_steps=150, progress=False)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(ROOT / "04_bc.py"),
                          "--smoke", "--data", "data", "--episodes", "0", "--workers", "1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((tmp_path / "runs" / "smoke" / "bc" / "config.json").read_text())
    assert config["world_size"] == 2 and (tmp_path / "runs" / "smoke" / "bc" / "policy.pt").exists()


@pytest.mark.slow
def test_rl_trains_under_torchrun_with_two_processes(tmp_path):
    # each rank runs its own environments; gradients and return statistics are averaged, rank 0 saves and evaluates
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          str(ROOT / "05_rl.py"), "--smoke", "--scratch", "--env-workers", "1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "runs" / "smoke" / "rl" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["env_steps"] == 64  # --smoke's 64 steps: 2 ranks x 2 envs x 16 steps


def test_times_keep_each_runs_latest_and_pass_over_other_lines(tmp_path):
    import report

    path = tmp_path / "times.tsv"
    path.write_text("idm_sweep\t1926\nDONE\nbc_contractor\t780\trc=0\nlabel_0.05h\tabc\nidm_sweep\t600\n")
    times = report.stage_times(path)
    assert times == {"idm_sweep": 600, "bc_contractor": 780}
    assert report.times_table(times, "run")[::3] == ["| run | minutes | measured on |", "| bc_contractor | 13.0 |  |"]
    assert report.times_table(times, "run")[-2] == "| all | 23.0 | |"
    # a run that finished with no time is named beside the total that leaves it out; one that did not finish is not
    assert report.times_table(times, "run", {"rl": {"item_rates": {}}, "x": None})[-2] == \
        "| all | 23.0 | without rl (not timed) |"
    on = {"machine": "a 2-core laptop", "date": "2026-11-30"}
    assert report.times_table(times, "run", {"idm_sweep": {"run": on}, "bc_contractor": {"run": on},
                                             "x": None})[2:4] == ["| idm_sweep | 10.0 | a 2-core laptop, 2026-11-30 |",
                                                                  "| bc_contractor | 13.0 | a 2-core laptop, 2026-11-30 |"]
    assert report.stage_times(tmp_path / "missing.tsv") == {}
