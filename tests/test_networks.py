"""VPT's networks: sizes and names as OpenAI's, shapes, the attention masks (causal with memory for the policy,
unmasked for the IDM, episode starts), memory across chunks, loading OpenAI-format files safely, checkpoints."""

import argparse
import os
import pickle
import re
import subprocess
import sys

import pytest
import torch

import common as c
from conftest import ROOT, load_stage
from tools import bench


def frames(b, t, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, size, size, 3), dtype=torch.uint8, generator=g)


def no_first(b, t):
    return torch.zeros(b, t, dtype=torch.bool)


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return c.make_model("policy", "toy").eval()


@pytest.fixture(scope="module")
def idm():
    torch.manual_seed(0)
    return c.make_model("idm", "toy").eval()


# ----------------------------------------------------------------------------------------------- sizes and names


@pytest.mark.parametrize("kind, preset, total, net", [
    # the IDM's total is the size of OpenAI's released 4x_idm.weights, counted tensor by tensor
    ("idm", "4x", 482_330_046, 482_076_032),
    ("policy", "1x", 70_998_651, 62_016_576),
    ("policy", "2x", 248_495_291, 230_539_904),
    ("policy", "3x", 532_504_315, 505_575_616),
])
def test_parameter_counts_match_openai(kind, preset, total, net):
    with torch.device("meta"):
        model = c.make_model(kind, preset)
    assert c.count_parameters(model) == total
    assert sum(p.numel() for p in model.net.parameters()) == net


def test_state_dict_uses_openais_names():
    with torch.device("meta"):
        policy, idm = c.make_model("policy", "1x"), c.make_model("idm", "4x")
    keys = policy.state_dict()
    # 125 net tensors, 4 in the policy head, 5 in the value head, as in OpenAI's released policy .weights
    assert len([k for k in keys if k.startswith("net.")]) == 125 and len(keys) == 134
    for name, shape in [("net.img_process.cnn.stacks.0.firstconv.layer.bias", (64,)),
                        ("net.img_process.cnn.stacks.1.firstconv.norm.weight", (64,)),
                        ("net.img_process.cnn.stacks.2.n.weight", (128,)),
                        ("net.img_process.cnn.stacks.0.blocks.1.conv0.layer.weight", (64, 64, 3, 3)),
                        ("net.img_process.cnn.dense.layer.weight", (256, 128 * 16 * 16)),
                        ("net.img_process.linear.layer.weight", (1024, 256)),
                        ("net.recurrent_layer.blocks.3.r.orc_block.r_layer.weight", (80, 1024)),
                        ("net.recurrent_layer.blocks.0.r.orc_block.b_nd", (10, 128)),
                        ("net.recurrent_layer.blocks.0.mlp1.layer.bias", (1024,)),
                        ("net.lastlayer.layer.weight", (1024, 1024)), ("net.final_ln.bias", (1024,)),
                        ("pi_head.buttons.linear_layer.weight", (8641, 1024)),
                        ("pi_head.camera.linear_layer.bias", (121,)),
                        ("value_head.normalizer.debiasing_term", ())]:
        assert tuple(keys[name].shape) == shape, name
    assert "net.img_process.cnn.stacks.0.firstconv.norm.weight" not in keys  # the policy's first conv has no norm
    idm_keys = idm.state_dict()
    assert tuple(idm_keys["net.conv3d_layer.layer.weight"].shape) == (128, 3, 5, 1, 1)
    assert tuple(idm_keys["net.recurrent_layer.blocks.0.r.orc_block.b_nd"].shape) == (10, 0)
    assert tuple(idm_keys["pi_head.buttons.linear_layer.weight"].shape) == (40, 4096)
    assert tuple(idm_keys["pi_head.camera.linear_layer.weight"].shape) == (22, 4096)
    assert "net.img_process.cnn.stacks.0.firstconv.norm.weight" in idm_keys and "value_head.linear.bias" not in idm_keys


# ----------------------------------------------------------------------------------------------- outputs


def test_output_shapes_and_log_probabilities(policy, idm):
    with torch.no_grad():
        pi, value, state = policy(frames(2, 5), no_first(2, 5), policy.initial_state(2))
        assert pi["buttons"].shape == (2, 5, 8641) and pi["camera"].shape == (2, 5, 121) and value.shape == (2, 5)
        assert torch.allclose(pi["buttons"].logsumexp(-1), torch.zeros(2, 5), atol=1e-5)
        pi, value, _ = idm(frames(2, 16), no_first(2, 16), idm.initial_state(2))
        assert pi["buttons"].shape == (2, 16, 20, 2) and pi["camera"].shape == (2, 16, 2, 11) and value is None
        assert torch.allclose(pi["camera"].exp().sum(-1), torch.ones(2, 16, 2), atol=1e-5)


# ----------------------------------------------------------------------------------------------- masks and memory


def test_policy_is_causal(policy):
    x = frames(1, 16)
    y = x.clone()
    y[0, 10:] = 255 - y[0, 10:]  # change the future from frame 10 on
    with torch.no_grad():
        a = policy(x, no_first(1, 16), policy.initial_state(1))[0]["buttons"]
        b = policy(y, no_first(1, 16), policy.initial_state(1))[0]["buttons"]
    assert torch.equal(a[0, :10], b[0, :10])
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_idm_sees_the_future(idm):
    x = frames(1, 16)
    y = x.clone()
    y[0, 12:] = 255 - y[0, 12:]
    with torch.no_grad():
        a = idm(x, no_first(1, 16), idm.initial_state(1))[0]["buttons"]
        b = idm(y, no_first(1, 16), idm.initial_state(1))[0]["buttons"]
    # frames 0..9 are beyond the 3-D conv's reach of 2 frames: only attention can carry the change back
    assert not torch.allclose(a[0, :10], b[0, :10], atol=1e-5)


def test_clipped_window_is_maxlen_frames():
    # one transformer layer, maxlen 8: frame t sees frames t-7..t and nothing older (with more layers the reach
    # grows by maxlen a layer)
    torch.manual_seed(2)
    model = c.make_model("policy", "toy", n_recurrence_layers=1, attention_memory_size=16, timesteps=8).eval()
    x = frames(1, 24)
    y = x.clone()
    y[0, 5] = 255 - y[0, 5]
    with torch.no_grad():
        a = model(x, no_first(1, 24), model.initial_state(1))[0]["buttons"][0]
        b = model(y, no_first(1, 24), model.initial_state(1))[0]["buttons"][0]
    changed = [t for t in range(24) if not torch.allclose(a[t], b[t])]
    assert changed == list(range(5, 13))  # frames 5..12 have frame 5 in their window of 8


def test_chunks_with_memory_equal_one_call_and_single_steps(policy):
    x, first = frames(2, 96), no_first(2, 96)
    first[:, 0] = True
    with torch.no_grad():
        whole = policy(x, first, policy.initial_state(2))[0]["camera"]
        state, chunks = policy.initial_state(2), []
        for k in range(3):
            pi, _, state = policy(x[:, 32 * k:32 * (k + 1)], first[:, 32 * k:32 * (k + 1)], state)
            chunks.append(pi["camera"])
        state, steps = policy.initial_state(2), []
        for t in range(0, 96, 1):
            pi, _, state = policy(x[:, t:t + 1], first[:, t:t + 1], state)
            steps.append(pi["camera"])
    assert torch.allclose(whole, torch.cat(chunks, 1), atol=1e-4)
    assert torch.allclose(whole, torch.cat(steps, 1), atol=1e-4)


def test_episode_start_hides_the_past(policy):
    x = frames(1, 64)
    with torch.no_grad():
        fresh = policy(x[:, 32:], no_first(1, 32), policy.initial_state(1))[0]["buttons"]
        # play 32 frames of another episode first, then start a new one: the memory must be ignored
        _, _, state = policy(x[:, :32], no_first(1, 32), policy.initial_state(1))
        first = no_first(1, 32)
        first[0, 0] = True
        restarted = policy(x[:, 32:], first, state)[0]["buttons"]
        continued = policy(x[:, 32:], no_first(1, 32), state)[0]["buttons"]
    assert torch.allclose(fresh, restarted, atol=1e-5)
    assert not torch.allclose(fresh, continued, atol=1e-3)


def test_episode_start_in_the_middle_of_a_chunk(policy):
    x = frames(2, 32)
    first = no_first(2, 32)
    first[:, 12] = True
    with torch.no_grad():
        mixed = policy(x, first, policy.initial_state(2))[0]["buttons"]
        alone = policy(x[:, 12:], no_first(2, 20), policy.initial_state(2))[0]["buttons"]
        # and the memory it leaves holds only the new episode: next chunk as if the episode had been alone
        _, _, s_mixed = policy(x, first, policy.initial_state(2))
        _, _, s_alone = policy(x[:, 12:], no_first(2, 20), policy.initial_state(2))
        nxt = frames(2, 8, seed=3)
        a = policy(nxt, no_first(2, 8), s_mixed)[0]["buttons"]
        b = policy(nxt, no_first(2, 8), s_alone)[0]["buttons"]
    assert torch.allclose(mixed[:, 12:], alone, atol=1e-5)
    assert torch.allclose(a, b, atol=1e-5)


def test_idm_skips_lastlayer_and_policy_uses_it(policy, idm):
    # OpenAI's IDM throws lastlayer's output away (lib/policy.py, InverseActionNet); the policy does not
    for model, should_change in ((idm, False), (policy, True)):
        x = frames(1, 8)
        with torch.no_grad():
            before = model(x, no_first(1, 8), model.initial_state(1))[0]["buttons"]
            saved = model.net.lastlayer.layer.weight.clone()
            model.net.lastlayer.layer.weight.mul_(-3.0)
            after = model(x, no_first(1, 8), model.initial_state(1))[0]["buttons"]
            model.net.lastlayer.layer.weight.copy_(saved)
        assert (not torch.allclose(before, after)) == should_change


def test_idm_freezes_only_what_it_never_uses(idm):
    frozen = sorted(n for n, p in idm.named_parameters() if not p.requires_grad)
    assert frozen and all("lastlayer" in n or "r_layer" in n or "b_nd" in n for n in frozen)
    model = c.make_model("idm", "toy")
    pi, _, _ = model(frames(1, 6), no_first(1, 6), model.initial_state(1))
    (pi["buttons"].mean() + pi["camera"].mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_optimiser_decays_matrices_only_and_leaves_frozen_tensors_out():
    from argparse import Namespace

    model = c.make_model("idm", "toy")
    optimizer, trainable = c.make_optimizer(model, Namespace(lr=0.1, weight_decay=0.5))
    grouped = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len(trainable) == sum(p.requires_grad for p in model.parameters())
    decay, no_decay = optimizer.param_groups
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    # with no gradient, a step shrinks the matrices by lr * weight decay and leaves norms and biases as they are
    matrix, bias = decay["params"][0], no_decay["params"][0]
    before = matrix.detach().clone(), bias.detach().clone()
    for p in trainable:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.allclose(matrix, before[0] * (1 - 0.1 * 0.5)) and torch.equal(bias, before[1])


def test_gradients_reach_every_parameter(policy):
    model = c.make_model("policy", "toy")
    pi, value, _ = model(frames(1, 4), no_first(1, 4), model.initial_state(1))
    (pi["buttons"].mean() + pi["camera"].mean() + value.mean()).backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    # everything learns from a 4-frame clip (b_nd counts as reached through its first 4 time offsets)
    assert unreached == [], unreached


# ----------------------------------------------------------------------------------------------- value normaliser


def test_ewma_normalizer_round_trip():
    norm = c.EwmaNormalizer(beta=0.9)
    for _ in range(200):
        norm.update(torch.randn(64) * 3 + 5)
    mean, std = norm.mean_std()
    assert abs(mean.item() - 5) < 0.5 and abs(std.item() - 3) < 0.5
    x = torch.tensor([1.0, 7.0])
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)


# ----------------------------------------------------------------------------------------------- files


def openai_files(tmp_path, model, name="m", extra_weights=None):
    """An OpenAI-format pair: a pickled dict shaped like theirs, and a torch.save'd state dict."""
    spec = {"version": 1361, "model": {"function": "ypt.model.x:create", "args": {
        "net": {"function": "ypt.model.inverse_action_model:InverseActionNet" if model.kind == "idm" else "x",
                "args": model.net_args, "local_args": {}},
        "pi_head_opts": {"temperature": 3}}}, "extra_args": {}}
    (tmp_path / f"{name}.model").write_bytes(pickle.dumps(spec))
    weights = dict(model.state_dict())
    weights.update(extra_weights or {})
    torch.save(weights, tmp_path / f"{name}.weights")
    return tmp_path / f"{name}.model", tmp_path / f"{name}.weights"


@pytest.mark.parametrize("kind", ["policy", "idm"])
def test_load_openai_model(tmp_path, kind, policy, idm):
    original = policy if kind == "policy" else idm
    extra = {"aux_value_head.linear.weight": torch.zeros(1, 256)} if kind == "policy" else None
    model_path, weights_path = openai_files(tmp_path, original, extra_weights=extra)
    loaded = c.load_openai_model(model_path, weights_path).eval()
    assert loaded.kind == kind and loaded.temperature == 3.0
    x = frames(1, 8)
    with torch.no_grad():
        a = original(x, no_first(1, 8), original.initial_state(1))[0]["camera"]
        b = loaded(x, no_first(1, 8), loaded.initial_state(1))[0]["camera"]
    # the same weights give the same distribution: the file's temperature (3) is kept for sampling only
    assert torch.allclose(a, b, atol=1e-5)
    assert c.load_model(weights_path, kind=kind).kind == kind
    with pytest.raises(c.ModelFileError, match="holds a"):
        c.load_model(model_path, kind="idm" if kind == "policy" else "policy")


def test_weights_of_the_wrong_size_are_refused(tmp_path, policy):
    model_path, _ = openai_files(tmp_path, policy)
    bigger = c.make_model("policy", "toy", hidsize=512)
    torch.save(bigger.state_dict(), tmp_path / "m.weights")
    with pytest.raises(c.ModelFileError, match=r"m\.weights: does not fit .* wrong shape"):
        c.load_openai_model(model_path, tmp_path / "m.weights")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.model"
    evil.write_bytes(pickle.dumps({"model": {"args": {"net": {"args": {}}}}, "payload": _Evil()}))
    with pytest.raises(c.ModelFileError, match=r"evil\.model: refused: .*system"):
        c.read_model_file(evil)
    assert not (tmp_path / "pwned_by_pickle").exists()
    (tmp_path / "junk.model").write_bytes(b"\x00\x01not a pickle")
    with pytest.raises(c.ModelFileError, match=r"junk\.model"):
        c.read_model_file(tmp_path / "junk.model")


def test_weights_with_code_are_refused(tmp_path, policy):
    model_path, weights_path = openai_files(tmp_path, policy)
    weights_path.write_bytes(pickle.dumps({"x": _Evil()}))
    says = r"m\.weights: not a torch state dict of weights: .*nothing in it was run"
    with pytest.raises(c.ModelFileError, match=says):
        c.load_openai_model(model_path, weights_path)


def test_checkpoint_with_code_is_refused_in_one_line(tmp_path, idm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = {"kind": "idm", "net_args": idm.net_args, "model": idm.state_dict(), "payload": _Evil()}
    torch.save(ckpt, tmp_path / "evil.pt")  # our own format (a zip), with an object that would run a command
    with pytest.raises(c.ModelFileError) as caught:
        c.load_checkpoint(tmp_path / "evil.pt")
    assert re.fullmatch(r"\S*evil\.pt: refused: it asks to load the Python object \S*system, .*nothing in it was run\)",
                        str(caught.value))
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_checkpoint_round_trip(tmp_path, idm):
    opt = torch.optim.AdamW(idm.parameters(), lr=1e-3)
    path = c.save_checkpoint(tmp_path / "runs" / "idm.pt", idm, opt, step=7, preset="toy")
    assert not (tmp_path / "runs" / "idm.pt.tmp").exists()
    ckpt = c.load_checkpoint(path)
    assert ckpt["step"] == 7 and ckpt["preset"] == "toy" and ckpt["kind"] == "idm"
    model = c.build_model(ckpt)
    for (n, p), (_, q) in zip(model.state_dict().items(), idm.state_dict().items()):
        assert torch.equal(p, q), n
    (tmp_path / "bad.pt").write_bytes(b"truncated")
    with pytest.raises(c.ModelFileError, match=r"bad\.pt: not a nanoVPT checkpoint"):
        c.load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(c.ModelFileError, match=r"nope\.pt: no such checkpoint"):
        c.load_model(tmp_path / "nope.pt")


def test_resume_restores_weights_and_optimiser_and_refuses_another_network(tmp_path):
    torch.manual_seed(0)
    model = c.make_model("policy", "toy", hidsize=64, attention_heads=2, n_recurrence_layers=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames = torch.randint(0, 256, (1, 4, 64, 64, 3), dtype=torch.uint8)
    first = torch.zeros(1, 4, dtype=torch.bool)
    model(frames, first, model.initial_state(1))[0]["buttons"].mean().backward()
    opt.step()  # an optimiser with moments to restore
    path = c.save_checkpoint(tmp_path / "policy.pt", model, opt, step=3)
    assert c.resume_from(tmp_path / "none_yet.pt", model, opt) is None  # a fresh start
    torch.manual_seed(1)
    again = c.make_model("policy", "toy", hidsize=64, attention_heads=2, n_recurrence_layers=1)
    again_opt = torch.optim.AdamW(again.parameters(), lr=1e-3)
    assert c.resume_from(path, again, again_opt)["step"] == 3
    for (n, p), (_, q) in zip(again.state_dict().items(), model.state_dict().items()):
        assert torch.equal(p, q), n
    moments = [s["exp_avg"] for s in again_opt.state_dict()["state"].values()]
    assert moments and all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, opt.state_dict()["state"].values()))
    # the same run resumed with another --preset: a clear refusal, not a wall of size mismatches
    wider = c.make_model("policy", "toy", hidsize=128, attention_heads=2, n_recurrence_layers=1)
    with pytest.raises(c.ModelFileError, match=r"policy\.pt: does not fit the network being trained.*wrong shape"):
        c.resume_from(path, wider, torch.optim.AdamW(wider.parameters()))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = c.make_model("policy", "toy", hidsize=64, attention_heads=2, timesteps=8, attention_memory_size=16)
    x = torch.randint(0, 256, (2, 8, 64, 64, 3), dtype=torch.uint8)
    first = torch.zeros(2, 8, dtype=torch.bool)
    model.net.CHECKPOINT_FRAMES = 5  # 16 frames in chunks of 5, 5, 5, 1
    grads = []
    for on in (False, True):
        model.net.checkpoint_activations(on)
        model.zero_grad()
        pi, value, _ = model(x, first, model.initial_state(2))
        (pi["buttons"][..., :50].sum() + pi["camera"].sum() + value.sum()).backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 10
    # equal up to float rounding (convolutions over 5 frames at a time may sum in another order)
    assert all((a - b).abs().max() <= 1e-4 * a.abs().max() + 1e-7 for a, b in zip(*grads))


def test_bench_model_prints_a_row_per_preset_and_autocast():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "model", "--kind", "idm", "--preset",
                          "toy", "--timesteps", "8", "--repeats", "1", "--checkpoint-activations", "--bf16", "compare",
                          "--net", '{"impala_chans": [16, 32, 32]}'], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.strip().startswith("toy")]
    assert [r[1] for r in rows] == ["fp32", "bf16", "bf16"] and "MiB" in rows[0] and "speed-up:" in rows[2]
    # --net times a variant of the preset: the wider CNN's parameter count (OpenAI's widths), not the preset's
    variant = c.count_parameters(c.make_model("idm", "toy", impala_chans=[16, 32, 32])) / 1e6
    assert rows[0][2] == f"{variant:.1f}M" != f"{c.count_parameters(c.make_model('idm', 'toy')) / 1e6:.1f}M"
    with pytest.raises(argparse.ArgumentTypeError, match="must be a JSON object"):
        bench.network_arguments("[8, 16, 32]")
    typo = argparse.Namespace(kind="policy", preset="toy", net={"impala_chanz": [8]}, device="cpu", bf16="off",
                              batch=1, repeats=1, checkpoint_activations=False)
    with pytest.raises(SystemExit, match="impala_chanz is not an argument of the policy network"):
        bench.bench_model(typo)
    # every caller of make_model, not only the benchmark: a misspelt argument would otherwise build the preset itself
    with pytest.raises(ValueError, match="hidsise is not an argument of the idm network; it takes .*hidsize"):
        c.make_model("idm", "toy", hidsise=64)


@pytest.mark.parametrize("stage", ["01_idm.py", "03_label.py", "04_bc.py", "05_rl.py"])
def test_bf16_flag_becomes_a_bool_in_setup_run(stage):
    parse_args = load_stage(stage).parse_args
    for argv, want in [([], c.bf16_is_fast("cpu")), (["--bf16"], True), (["--bf16", "on"], True),
                       (["--bf16", "off"], False)]:
        args = parse_args(argv + ["--device", "cpu"])
        c.setup_run(args, process_group=False)
        assert args.bf16 is want, argv
    assert c.bf16_is_fast("meta") is False  # neither CUDA nor CPU: no autocast unless asked for


def test_checkpointing_keeps_far_fewer_activations_for_backward():
    model = c.make_model("policy", "toy", hidsize=64, attention_heads=2, timesteps=8, attention_memory_size=16)
    x = torch.randint(0, 256, (2, 8, 64, 64, 3), dtype=torch.uint8)
    first = torch.zeros(2, 8, dtype=torch.bool)
    full = bench.saved_activation_bytes(model, x, first)
    model.net.checkpoint_activations(True)
    assert bench.saved_activation_bytes(model, x, first) < full / 10
    # the CNN's activations alone: 16 channels at 64x64 in float32, more than once per frame
    assert full > 2 * 8 * 16 * 64 * 64 * 4
