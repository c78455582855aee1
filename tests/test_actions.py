"""The VPT action space: camera bins, joint button classes and their special cases, the inverse mapping.

Expected numbers are worked by hand from VPT Appendix D and OpenAI's lib/actions.py (CameraQuantizer,
ActionTransformer) and lib/action_mapping.py (CameraHierarchicalMapping); the randomised tests compare the vectorised
code with a slow, row-by-row reference written from the same rules.
"""

import itertools

import numpy as np
import pytest

import common as c

# ----------------------------------------------------------------------------------------------- camera quantisation

# the 11 bin centres in degrees: mu-law with maxval 10, binsize 2, mu 10, undone by hand for each bin
BIN_CENTRES = [-10, -5.8095, -3.2154, -1.6095, -0.6154, 0, 0.6154, 1.6095, 3.2154, 5.8095, 10]


def test_bin_centres():
    assert c.N_CAMERA_BINS == 11 and c.CAMERA_NULL_BIN == 5
    np.testing.assert_allclose(c.dequantize_camera(np.arange(11)), BIN_CENTRES, atol=1e-4)


def test_quantize_returns_each_centre_to_its_bin():
    np.testing.assert_array_equal(c.quantize_camera(c.dequantize_camera(np.arange(11))), np.arange(11))


def test_quantize_boundaries_and_clipping():
    # decision boundaries in degrees: 0.271, 1.053, 2.317, 4.358, 7.655 (the warp of the half-way points 1, 3, 5, 7, 9)
    assert c.quantize_camera(0.26) == 5 and c.quantize_camera(0.28) == 6
    assert c.quantize_camera(1.04) == 6 and c.quantize_camera(1.06) == 7
    assert c.quantize_camera(-2.30) == 3 and c.quantize_camera(-2.33) == 2
    assert c.quantize_camera(4.35) == 8 and c.quantize_camera(4.37) == 9
    assert c.quantize_camera(7.6) == 9 and c.quantize_camera(7.7) == 10
    # anything past 10 degrees is the outer bin: a policy cannot turn faster than 10 degrees a tick
    np.testing.assert_array_equal(c.quantize_camera([-180.0, -10.0, 10.0, 90.0]), [0, 0, 10, 10])


def test_quantize_is_elementwise_over_any_shape():
    x = np.random.default_rng(0).uniform(-15, 15, (4, 3, 2))
    bins = c.quantize_camera(x)
    assert bins.shape == x.shape and bins.dtype == np.int64
    np.testing.assert_array_equal(bins.reshape(-1), [c.quantize_camera(v) for v in x.reshape(-1)])


# ----------------------------------------------------------------------------------------------- joint button classes


def test_class_counts():
    assert c.N_BUTTON_CLASSES == 8641 and c.N_CAMERA_CLASSES == 121
    assert c.INVENTORY_CLASS == 8640 and c.NULL_CAMERA_CLASS == 60


def test_null_action():
    joint = c.env_to_policy_action(c.minerl_noop())
    assert joint["buttons"].tolist() == [0] and joint["camera"].tolist() == [60]
    back = c.policy_to_env_action({"buttons": [0], "camera": [60]})
    assert all(back[b][0] == 0 for b in c.BUTTONS)
    np.testing.assert_array_equal(back["camera"], [[0.0, 0.0]])


def test_forward_attack_jump_with_camera():
    # groups (hotbar, fore_back, left_right, sprint_sneak, use, drop, attack, jump, camera) with sizes
    # (10, 3, 3, 3, 2, 2, 2, 2, 2): choices (0, 1, 0, 0, 0, 0, 1, 1, 1) ->
    # ((((((((0*3+1)*3+0)*3+0)*2+0)*2+0)*2+1)*2+1)*2+1) = 295
    # camera: +5 degrees pitch is bin 9 (4.358..7.655), -1 degree yaw is bin 4 (-1.053..-0.271): 9*11 + 4 = 103
    action = {"forward": 1, "attack": 1, "jump": 1, "camera": np.array([5.0, -1.0])}
    joint = c.env_to_policy_action(action)
    assert joint["buttons"].tolist() == [295] and joint["camera"].tolist() == [103]
    # the same buttons without mouse motion: camera meta-action off, so 294, and the null camera class
    joint = c.env_to_policy_action({"forward": 1, "attack": 1, "jump": 1, "camera": np.zeros(2)})
    assert joint["buttons"].tolist() == [294] and joint["camera"].tolist() == [60]


def test_hotbar_3_alone():
    # hotbar.3 is option 3 of the first group, whose stride is 3*3*3*2**5 = 864
    assert c.env_to_policy_action({"hotbar.3": 1, "camera": np.zeros(2)})["buttons"].tolist() == [3 * 864]


def test_inventory_overrides_everything():
    action = {"inventory": 1, "forward": 1, "attack": 1, "hotbar.5": 1, "camera": np.array([8.0, -8.0])}
    joint = c.env_to_policy_action(action)
    assert joint["buttons"].tolist() == [8640] and joint["camera"].tolist() == [60]


def test_conflicts_within_groups():
    def buttons(**held):
        return int(c.env_to_policy_action({**held, "camera": np.zeros(2)})["buttons"][0])

    # the later button of a group wins
    assert buttons(**{"hotbar.1": 1, "hotbar.2": 1}) == buttons(**{"hotbar.2": 1}) == 2 * 864
    assert buttons(sprint=1, sneak=1) == buttons(sneak=1) == 2 * 32
    # opposite directions cancel
    assert buttons(forward=1, back=1) == 0
    assert buttons(left=1, right=1, jump=1) == buttons(jump=1) == 2
    # the three keys VPT drops do nothing
    assert buttons(ESC=1, pickItem=1, swapHands=1) == 0


def test_batched_and_unbatched_agree():
    rng = np.random.default_rng(1)
    batch = random_env_actions(rng, 50)
    joint = c.env_to_policy_action(batch)
    for i in range(50):
        one = {k: (v[i] if k != "camera" else v[i]) for k, v in batch.items()}
        single = c.env_to_policy_action(one)
        assert single["buttons"][0] == joint["buttons"][i] and single["camera"][0] == joint["camera"][i]


def test_inverse_of_named_class():
    env = c.policy_to_env_action({"buttons": np.array([295]), "camera": np.array([103])})
    held = [b for b in c.BUTTONS if env[b][0]]
    assert sorted(held) == ["attack", "forward", "jump"]
    np.testing.assert_allclose(env["camera"][0], [5.8095, -0.6154], atol=1e-4)


def test_camera_meta_off_zeroes_camera():
    # class 294 = forward+attack+jump with the camera meta-action "none": the camera class is ignored
    env = c.policy_to_env_action({"buttons": np.array([294]), "camera": np.array([0])})
    np.testing.assert_array_equal(env["camera"], [[0.0, 0.0]])


def test_inventory_class_keeps_sampled_camera():
    # OpenAI's quirk (CameraHierarchicalMapping.to_factored): the inventory class is not flagged "camera off" at decode time
    env = c.policy_to_env_action({"buttons": np.array([8640]), "camera": np.array([0])})
    assert env["inventory"][0] == 1 and sum(env[b][0] for b in c.BUTTONS) == 1
    np.testing.assert_allclose(env["camera"][0], [-10.0, -10.0])


# ----------------------------------------------------------------------------------------------- against a reference


def random_env_actions(rng, n):
    """Random MineRL actions, denser in the cases that matter: several buttons per group, inventory, tiny and huge
    camera motions, exact zeros."""
    action = {k: (rng.random(n) < 0.3).astype(np.int64) for k in c.MINERL_KEYS if k != "camera"}
    action["inventory"] = (rng.random(n) < 0.05).astype(np.int64)
    camera = rng.choice([0.0, 0.1, 0.5, 2.0, 6.0, 30.0], (n, 2)) * rng.choice([-1, 1], (n, 2))
    camera += rng.normal(0, 0.05, (n, 2)) * (rng.random((n, 2)) < 0.5)
    action["camera"] = camera
    return action


def reference_env_to_policy(action, i):
    """Row i, one group at a time, by enumerating the combinations as tuples (the spec's description, literally)."""
    groups = list(c.BUTTON_GROUPS.values())
    combos = list(itertools.product(*groups)) + ["inventory"]
    pressed = {b: bool(action[b][i]) for b in c.BUTTONS}
    bins = c.quantize_camera(action["camera"][i])
    if pressed["inventory"]:
        return combos.index("inventory"), 5 * 11 + 5
    key = []
    for options in groups[:-1]:
        chosen = "none"
        for option in options[1:]:
            if pressed[option]:
                chosen = option
        if options[1:] in (["forward", "back"], ["left", "right"]) and all(pressed[o] for o in options[1:]):
            chosen = "none"
        key.append(chosen)
    key.append("none" if (bins == 5).all() else "camera")
    return combos.index(tuple(key)), int(bins[0] * 11 + bins[1])


def test_matches_reference_on_random_actions():
    rng = np.random.default_rng(2)
    action = random_env_actions(rng, 400)
    joint = c.env_to_policy_action(action)
    for i in range(400):
        assert (joint["buttons"][i], joint["camera"][i]) == reference_env_to_policy(action, i), i


def test_inverse_then_forward_is_identity_on_valid_classes():
    rng = np.random.default_rng(3)
    buttons = rng.integers(0, c.N_BUTTON_CLASSES, 5000)
    camera = rng.integers(0, c.N_CAMERA_CLASSES, 5000)
    # the canonical pair: camera class null where the meta-action is off or for the inventory class
    off = c.BUTTON_CLASS_CAMERA_OFF[buttons] | (buttons == c.INVENTORY_CLASS)
    camera[off] = c.NULL_CAMERA_CLASS
    # and a camera class that is not null where the meta-action is on
    on_null = ~off & (camera == c.NULL_CAMERA_CLASS)
    camera[on_null] = 0
    again = c.env_to_policy_action(c.policy_to_env_action({"buttons": buttons, "camera": camera}))
    np.testing.assert_array_equal(again["buttons"], buttons)
    np.testing.assert_array_equal(again["camera"], camera)


def test_forward_then_inverse_is_idempotent():
    rng = np.random.default_rng(4)
    joint = c.env_to_policy_action(random_env_actions(rng, 5000))
    again = c.env_to_policy_action(c.policy_to_env_action(joint))
    np.testing.assert_array_equal(again["buttons"], joint["buttons"])
    np.testing.assert_array_equal(again["camera"], joint["camera"])


def test_decode_table_matches_digits():
    # every class decodes to at most one button per group, and distinct classes decode to distinct actions
    table = c.BUTTON_CLASS_TABLE[: c.INVENTORY_CLASS]
    signatures = {tuple(row) + (bool(off),) for row, off in zip(table, c.BUTTON_CLASS_CAMERA_OFF)}
    assert len(signatures) == c.INVENTORY_CLASS
    for options in list(c.BUTTON_GROUPS.values())[:-1]:
        cols = [c.BUTTONS.index(o) for o in options[1:]]
        assert table[:, cols].sum(axis=1).max() == 1


@pytest.mark.parametrize("n", [1, 7])
def test_output_shapes_and_types(n):
    joint = c.env_to_policy_action(c.minerl_noop(n))
    assert joint["buttons"].shape == (n,) and joint["buttons"].dtype == np.int64
    env = c.policy_to_env_action(joint)
    assert set(env) == set(c.BUTTONS) | {"camera"}
    assert env["camera"].shape == (n, 2) and env["camera"].dtype == np.float32
