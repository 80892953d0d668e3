"""The NVLink fabric: port groups from the presets, spraying, processor-sharing contention,
the in-switch reduction ALU."""

from __future__ import annotations

import numpy as np
import pytest

from blackwell_sim import load_config
from blackwell_sim.engine.fabric import Fabric


def test_port_groups_follow_the_preset_wiring():
    hgx = Fabric(load_config("hgx-h100-8"))
    assert hgx.kind == "nvswitch" and list(hgx.port_links) == [5, 4, 4, 5]
    payload = 25e9 * 0.82  # NVLink 4 link per direction x link_efficiency
    assert hgx.port_bytes_per_s == pytest.approx(np.array([5, 4, 4, 5]) * payload)
    assert hgx.gpu_bytes_per_s == pytest.approx(18 * payload)
    nvl = Fabric(load_config("gb200-nvl72"))
    assert nvl.port_bytes_per_s.shape == (18,) and nvl.active_up.shape == (72, 18)
    direct = Fabric(load_config("h200x2-nvlink"))
    assert direct.kind == "direct" and list(direct.port_links) == [18] and not direct.nvls


def test_traffic_is_sprayed_over_switches_by_link_count():
    fab = Fabric(load_config("hgx-h100-8"))
    sent = np.zeros(8)
    sent[3] = 1.8e9
    received = np.zeros(8)
    received[5] = 1.8e9
    t = fab.route(sent, received)
    assert t.up[3] == pytest.approx([0.5e9, 0.4e9, 0.4e9, 0.5e9])
    assert t.down[5] == pytest.approx([0.5e9, 0.4e9, 0.4e9, 0.5e9])
    assert t.up.sum() == pytest.approx(1.8e9) and t.up[[0, 1, 2, 4, 5, 6, 7]].sum() == 0
    fab.join(t)
    seconds, why = fab.seconds_for(t)
    # every port group drains at the same time: the GPU's whole payload rate
    assert why == "link" and seconds == pytest.approx(1.8e9 / fab.gpu_bytes_per_s)


def test_concurrent_users_share_a_link_and_leave_restores_it():
    fab = Fabric(load_config("h200x2-nvlink"))
    t = fab.route(np.array([1e9, 0.0]), np.array([0.0, 1e9]))
    fab.join(t)
    alone = fab.seconds_for(t)[0]
    fab.join(t)
    assert fab.seconds_for(t)[0] == pytest.approx(2 * alone)
    other_direction = fab.route(np.array([0.0, 1e9]), np.array([1e9, 0.0]))
    fab.join(other_direction)   # the reverse direction is a separate resource
    assert fab.seconds_for(other_direction)[0] == pytest.approx(alone)
    fab.leave(other_direction), fab.leave(t), fab.leave(t)
    assert fab.seconds_for(t)[0] == pytest.approx(alone)
    with pytest.raises(RuntimeError, match="leave"):
        fab.leave(t)


def test_link_efficiency_scales_the_payload_rate():
    fast = Fabric(load_config("h200x2-nvlink", overrides={"fabric.link_efficiency": 1.0}))
    slow = Fabric(load_config("h200x2-nvlink", overrides={"fabric.link_efficiency": 0.5}))
    assert fast.gpu_bytes_per_s == pytest.approx(450e9) and slow.gpu_bytes_per_s == pytest.approx(225e9)


def test_switch_reduction_alu_can_bound_a_transfer():
    fab = Fabric(load_config("gb200-nvl72"))
    t = fab.route(np.full(72, 1e6), np.full(72, 1e6), reduce_flop=18 * 400e9)  # 1 s of ALU work
    fab.join(t)
    seconds, why = fab.seconds_for(t)
    assert why == "switch_reduce" and seconds == pytest.approx(1.0)
    assert fab.flop_reduce.sum() == pytest.approx(18 * 400e9)


def test_nvls_needs_a_switch_with_sharp():
    assert Fabric(load_config("hgx-h100-8")).nvls
    assert not Fabric(load_config("hgx-h100-8", overrides={"fabric.switch.nvls": False})).nvls


def test_route_rejects_arrays_of_the_wrong_shape():
    fab = Fabric(load_config("h200x2-nvlink"))
    with pytest.raises(ValueError, match="shape"):
        fab.route(np.ones(3), np.ones(3))
    hgx = Fabric(load_config("hgx-h100-8"))
    with pytest.raises(ValueError, match="shape"):
        hgx.route(np.ones(2), np.ones(8))


def test_bytes_by_class_names_the_link_directions():
    fab = Fabric(load_config("hgx-h100-8"))
    t = fab.route(np.full(8, 1e6), np.full(8, 2e6))
    fab.join(t)
    fab.seconds_for(t)
    assert fab.bytes_by_class() == pytest.approx({"gpu_to_switch": 8e6, "switch_to_gpu": 16e6})
