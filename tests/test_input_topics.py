"""InputTopics over real rclpy: one observation per complete, in-tolerance set; refusals reported."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]
rclpy = pytest.importorskip("rclpy")

from forethought.ros_ws.input_topics import INPUT_PARAMS, InputTopics  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import InputPublisher, Probe, probe, scene_obs  # noqa: E402,F401  (fixtures are used by name)


def params(**over) -> dict:
    return {**{k: v for k, (v, _) in INPUT_PARAMS.items()}, "objects": ["red_block", "green_block"], **over}


def listening(probe: Probe) -> tuple[InputTopics, list[tuple[np.ndarray, float]], list[str], InputPublisher, np.ndarray]:
    """An ``InputTopics`` on a node of the probe's context (red and green expected), what it hands
    on and refuses, a publisher, and a two-block observation; discovery done."""
    node = rclpy.create_node("input_topics_test", context=probe.context)
    probe.executor.add_node(node)
    got: list[tuple[np.ndarray, float]] = []
    refused: list[str] = []
    topics = InputTopics(node, params(), lambda obs, stamp: got.append((obs, stamp)), refused.append)
    pub = InputPublisher(probe)
    probe.spin_for(1.0)  # discovery
    return topics, got, refused, pub, scene_obs((0.1, -0.05), {"red_block": (0.0, 0.1), "green_block": (-0.1, 0.0)})


def test_one_observation_per_complete_set_and_refusals(probe: Probe) -> None:
    topics, got, refused, pub, obs = listening(probe)
    t0 = time.time()
    for k in range(3):
        pub.publish(obs, t0 + 0.1 * k)
    probe.spin_until(lambda: len(got) == 3, 10, "three observations")
    assert np.allclose(got[-1][0], obs, atol=1e-6) and got[-1][1] == pytest.approx(t0 + 0.2)
    pub.publish(obs, t0 + 0.1)  # a replay: refused as out of order, no observation
    pub.publish(obs, t0 - 5.0)  # stale on arrival
    probe.spin_until(lambda: len(refused) >= 6, 10, "the refusals")
    assert len(got) == 3
    values = topics.status_values()
    assert values["refused_out_of_order"] == 3 and values["refused_stale"] == 3
    obs_blue = scene_obs((0.1, -0.05), {"red_block": (0.0, 0.1), "green_block": (-0.1, 0.0), "blue_block": (0.2, 0.2)})
    pub.publish(obs_blue, t0 + 0.3)
    probe.spin_until(lambda: len(got) >= 4, 10, "the observation with blue")
    probe.spin_for(0.5)  # nothing more arrives
    assert len(got) == 4, refused[6:]
    assert got[-1][0][scene.block_slice("blue_block")][0] == 0.0  # objects not listed stay absent
    topics.node.destroy_node()


def test_a_clock_jumping_back_resets_the_inputs(probe: Probe) -> None:
    """A restarted sim_node restarts ``/clock``: the inputs' latest messages and the last set's stamp
    are forgotten (counted, one warning), so messages stamped on the new clock are taken at once
    instead of being refused as out of order."""
    topics, got, refused, pub, obs = listening(probe)
    t0 = time.time()
    pub.publish(obs, t0)
    probe.spin_until(lambda: len(got) == 1, 10, "the first observation")
    assert topics.status_values()["clock_resets"] == 0 and topics.inputs.latest  # a clock that runs: no reset
    pub.publish(obs, t0 - 0.2)  # older than the last accepted: refused
    probe.spin_until(lambda: len(refused) >= 1, 10, "the out-of-order refusal")
    assert len(got) == 1 and "not newer" in refused[-1]
    topics.check_clock(topics.now() - 300.0)  # the clock went back
    assert topics.status_values()["clock_resets"] == 1 and not topics.inputs.latest and topics.latest_stamp is None
    pub.publish(obs, t0 - 0.1)  # on the new clock: taken (fresh at the node clock), a complete set again
    probe.spin_until(lambda: len(got) == 2, 10, "an observation after the reset")
    assert got[-1][1] == pytest.approx(t0 - 0.1) and topics.status_values()["clock_resets"] == 1
    topics.node.destroy_node()
