"""Plots: what each figure draws (roofs from the config, ops where they belong), labelled axes,
reproducible bytes."""

from __future__ import annotations

import numpy as np
import pytest

from blackwell_sim.report import results_frame, write_plots
from blackwell_sim.report.plots import (
    EDGE_MAX_OPS_PER_LANE,
    MAX_BARS,
    MAX_GANTT_RANKS,
    distinct_kernels,
    plot_achieved_vs_peak,
    plot_bound_breakdown,
    plot_measured_vs_simulated,
    plot_roofline,
    plot_speed_vs_accuracy,
    plot_timeline,
    plots_for,
    save_figure,
)


def _flat(rows) -> list[float]:
    """Rows of numbers as one flat list (pytest.approx compares flat sequences only)."""
    return [float(x) for row in rows for x in row]


def frame(measured: bool = False):
    rows = [
        {"name": "big", "op": "gemm", "start_s": 0.0, "time_s": 2e-3, "flops": 1e13, "bytes_hbm": 1e9,
         "peak_tflops": 9000.0, "dtype": "nvfp4", "bound": "compute"},
        {"name": "sp", "op": "gemm", "start_s": 2e-3, "time_s": 1e-3, "flops": 4e12, "bytes_hbm": 2e8,
         "peak_tflops": 18000.0, "dtype": "nvfp4", "sparse": True, "bound": "power"},
        {"name": "skinny", "op": "gemm", "start_s": 3e-3, "time_s": 1e-4, "flops": 1e10, "bytes_hbm": 1e8,
         "peak_tflops": 2250.0, "dtype": "bf16", "bound": "hbm"},
        {"name": "attn", "op": "attention", "start_s": 3.1e-3, "time_s": 5e-4, "flops": 5e11,
         "bytes_hbm": 1e8, "peak_tflops": 2250.0, "dtype": "bf16", "bound": "compute"},
        {"name": "ar", "op": "all_reduce", "stream": "comm", "start_s": 1e-3, "time_s": 1e-3,
         "dtype": "bf16", "bound": "nvlink", "bytes_fabric": 1e8},
        {"name": "cp", "op": "memcpy", "start_s": 3.6e-3, "time_s": 4e-4, "bytes_hbm": 2e9, "bound": "hbm"},
    ]
    if measured:
        rows[0]["measured_s"] = 2.5e-3
        rows[2]["measured_s"] = 1e-4
    return results_frame(rows)


def visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_roofline_draws_the_config_roofs_and_the_ops(b200):
    fig = plot_roofline(frame(), b200)
    axes = visible(fig)
    assert [ax.get_title() for ax in axes] == ["nvfp4 on NVIDIA B200", "bf16 on NVIDIA B200"]
    nv = axes[0]
    assert nv.get_xscale() == "log" and nv.get_yscale() == "log"
    lines = {ln.get_label(): ln for ln in nv.get_lines()}
    dense = next(ln for lbl, ln in lines.items() if lbl.startswith("dense"))
    sparse = next(ln for lbl, ln in lines.items() if lbl.startswith("2:4 sparse"))
    x, y = dense.get_data()
    assert y.max() == pytest.approx(b200.peak_tflops("nvfp4"))
    assert sparse.get_data()[1].max() == pytest.approx(b200.peak_tflops("nvfp4", sparse=True))
    slope = y[0] / x[0]                                         # TFLOPS per FLOP/byte on the HBM roof
    assert slope == pytest.approx(b200.hbm.bandwidth_gbps * 1e9 / 1e12)
    points = np.vstack([c.get_offsets() for c in nv.collections])
    assert _flat(sorted(map(tuple, points))) == pytest.approx(_flat([(1e4, 5000.0), (2e4, 4000.0)]))
    bf_lines = [ln.get_label() for ln in axes[1].get_lines()]
    assert not any("sparse" in lbl for lbl in bf_lines)        # no sparse bf16 op, no sparse roof
    kinds = sorted(c.get_label() for c in axes[1].collections)
    assert kinds == ["attention (1)", "gemm (1)"]


def test_roofline_without_flops_says_so(b200):
    f = results_frame([{"name": "cp", "op": "memcpy", "start_s": 0.0, "time_s": 1e-3, "bytes_hbm": 1e9}])
    ax = visible(plot_roofline(f, b200))[0]
    assert ax.texts[0].get_text() == "no ops with FLOP and HBM bytes"


def test_roofline_puts_ops_without_a_tensor_format_on_an_hbm_only_panel(b200):
    f = results_frame([
        {"name": "g", "op": "gemm", "start_s": 0.0, "time_s": 1e-3, "flops": 1e12, "bytes_hbm": 1e9,
         "peak_tflops": 2250.0, "dtype": "bf16"},
        {"name": "norm", "op": "elementwise", "start_s": 1e-3, "time_s": 1e-4, "flops": 1e8, "bytes_hbm": 4e8}])
    axes = visible(plot_roofline(f, b200))
    assert [ax.get_title() for ax in axes] == ["bf16 on NVIDIA B200",
                                               "ops without a tensor-core format on NVIDIA B200"]
    (roof,) = axes[1].get_lines()
    x, y = roof.get_data()
    assert y == pytest.approx(x * b200.hbm.bandwidth_gbps / 1e3)      # no compute roof
    assert axes[1].collections[0].get_offsets().tolist() == [pytest.approx([0.25, 1.0])]


def test_timeline_lanes_and_rank_limit(b200):
    ax = plot_timeline(frame(), b200).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["GPU 0 / compute", "GPU 0 / comm"]
    assert ax.get_xlabel() == "time (ms)"
    bars = sorted((round(v[:, 0].min(), 9), round(v[:, 0].max() - v[:, 0].min(), 9), round(v[:, 1].mean()))
                  for c in ax.collections for v in (path.vertices for path in c.get_paths()))
    f = frame()
    lane = (f["stream"] == "comm").astype(int)
    expected = sorted(zip((f["start_s"] * 1e3).round(9), (f["time_s"] * 1e3).round(9), lane))
    assert _flat(bars) == pytest.approx(_flat(expected))
    many = results_frame([{"name": f"g{r}", "op": "gemm", "rank": r, "start_s": 0.0, "time_s": 1e-6}
                          for r in range(MAX_GANTT_RANKS + 3)])
    ax = plot_timeline(many, b200).axes[0]
    assert len(ax.get_yticklabels()) == MAX_GANTT_RANKS
    assert ax.get_title() == f"timeline (ranks 0-{MAX_GANTT_RANKS - 1} of {MAX_GANTT_RANKS + 3})"
    assert ax.get_xlabel() == "time (us)"


def test_crowded_lanes_drop_bar_separators(b200):
    n = EDGE_MAX_OPS_PER_LANE + 1
    rows = [{"name": f"a{i}", "op": "gemm", "start_s": i * 1e-6, "time_s": 1e-6} for i in range(n)]
    rows += [{"name": f"b{i}", "op": "gemm", "rank": 1, "start_s": i * 1e-6, "time_s": 1e-6} for i in range(3)]
    ax = plot_timeline(results_frame(rows), b200).axes[0]
    widths = sorted((len(c.get_paths()), float(c.get_linewidths()[0])) for c in ax.collections)
    assert widths == [(3, 0.3), (n, 0.0)]


def test_achieved_vs_peak_bars_are_the_longest_tensor_ops(b200):
    ax = plot_achieved_vs_peak(frame(), b200).axes[0]
    bars = sorted((p.get_y(), p.get_width()) for p in ax.patches)
    f = frame()
    expected = f[f["peak_tflops"] > 0].sort_values("time_s", ascending=False)["pct_of_peak"].tolist()
    assert [w for _, w in bars] == pytest.approx(expected)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "big [nvfp4] r0" and labels[1] == "sp [nvfp4 2:4] r0"
    many = results_frame([{"name": f"g{i}", "op": "gemm", "start_s": i * 1e-3, "time_s": 1e-3 - i * 1e-6,
                           "flops": 1e9, "peak_tflops": 100.0, "dtype": "bf16"} for i in range(MAX_BARS + 5)])
    ax = plot_achieved_vs_peak(many, b200).axes[0]
    assert len(ax.patches) == MAX_BARS
    assert ax.get_yticklabels()[-1].get_text() == f"g{MAX_BARS - 1} [bf16] r0"


def test_identical_kernels_on_many_ranks_are_one_bar_ranked_by_total_time(b200):
    same = {"op": "gemm", "time_s": 1e-4, "flops": 1e11, "peak_tflops": 2250.0, "dtype": "bf16",
            "bound": "compute"}
    rows = [{"name": f"r{r}.L{layer}.qkv", "rank": r, "start_s": layer * 1e-4, **same}
            for r in range(4) for layer in range(3)]
    rows.append({"name": "r0.lm_head", "op": "gemm", "rank": 0, "start_s": 3e-4, "time_s": 5e-4,
                 "flops": 1e12, "peak_tflops": 2250.0, "dtype": "bf16"})
    f = results_frame(rows)
    kernels = distinct_kernels(f)
    assert kernels[["name", "count"]].values.tolist() == [["r0.L0.qkv", 12], ["r0.lm_head", 1]]
    assert kernels["total_time_s"].tolist() == pytest.approx([1.2e-3, 5e-4])
    ax = plot_achieved_vs_peak(f, b200).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["r0.L0.qkv [bf16] x12", "r0.lm_head [bf16] r0"]
    assert len(ax.patches) == 2


def test_bound_breakdown_totals_are_the_time_shares(b200):
    f = frame()
    ax = plot_bound_breakdown(f, b200).axes[0]
    totals = {}
    labels = [t.get_text() for t in ax.get_yticklabels()]
    for p in ax.patches:
        y = round(p.get_y() + p.get_height() / 2)
        totals[labels[y]] = totals.get(labels[y], 0.0) + p.get_width()
    busy = f["time_s"].sum()
    expected = (f.groupby("bound")["time_s"].sum() / busy * 100).to_dict()
    assert totals == pytest.approx(expected)
    assert labels[0] == max(expected, key=expected.get)        # largest share first


def test_measured_plot_puts_ops_at_measured_vs_simulated_us(b200):
    ax = plot_measured_vs_simulated(frame(measured=True), b200).axes[0]
    points = np.vstack([c.get_offsets() for c in ax.collections])
    assert _flat(sorted(map(tuple, points))) == pytest.approx(_flat([(100.0, 100.0), (2500.0, 2000.0)]))


def test_speed_vs_accuracy_plots_each_executed_op_by_format(b200):
    f = frame().assign(sqnr_db=[20.0, 19.0, 45.0, float("nan"), float("nan"), float("nan")])
    ax = plot_speed_vs_accuracy(f, b200).axes[0]
    by_label = {c.get_label(): sorted(map(tuple, c.get_offsets())) for c in ax.collections}
    assert by_label == {"bf16 (1)": [(45.0, pytest.approx(100.0))],
                        "nvfp4 (2)": [(19.0, pytest.approx(4000.0)), (20.0, pytest.approx(5000.0))]}
    assert ax.get_xlabel() == "accuracy: SQNR vs fp32 reference (dB)"
    assert list(plots_for(f)) == ["roofline", "timeline", "achieved_vs_peak", "bound_breakdown",
                                  "speed_vs_accuracy"]


def test_log_axes_spanning_less_than_a_decade_still_have_labelled_ticks(b200):
    f = frame().assign(sqnr_db=[20.0, 19.0, float("nan"), float("nan"), float("nan"), float("nan")])
    fig = plot_speed_vs_accuracy(f, b200)                      # 4000-5000 TFLOPS: within one decade
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]
    assert shown and all(text.replace(".", "").isdigit() for text in shown)


def test_every_axis_is_labelled_and_numeric_axes_carry_units(b200):
    f = frame(measured=True)
    figs = [plot_roofline(f, b200), plot_timeline(f, b200), plot_achieved_vs_peak(f, b200),
            plot_bound_breakdown(f, b200), plot_measured_vs_simulated(f, b200)]
    for fig in figs:
        for ax in visible(fig):
            assert ax.get_xlabel() and ax.get_ylabel()
            assert "(" in ax.get_xlabel(), ax.get_xlabel()        # every x axis is numeric here
    assert "TFLOPS" in visible(figs[0])[0].get_ylabel()
    assert "(us)" in figs[4].axes[0].get_ylabel()


def test_write_plots_files_and_reproducible_bytes(b200, tmp_path):
    a = write_plots(frame(), b200, tmp_path / "a")
    assert [p.name for p in a] == ["roofline.png", "timeline.png", "achieved_vs_peak.png",
                                   "bound_breakdown.png"]
    assert list(plots_for(frame(measured=True)))[4:] == ["measured_vs_simulated"]
    b = write_plots(frame(), b200, tmp_path / "b")
    for pa, pb in zip(a, b):
        data = pa.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in data
        assert data == pb.read_bytes()
    svg1 = save_figure(plot_bound_breakdown(frame(), b200), tmp_path / "1.svg", "svg").read_bytes()
    svg2 = save_figure(plot_bound_breakdown(frame(), b200), tmp_path / "2.svg", "svg").read_bytes()
    assert svg1 == svg2 and b"<dc:date>" not in svg1


def test_bad_plot_format_is_one_line(b200, tmp_path):
    from blackwell_sim.errors import BlackwellSimError

    with pytest.raises(BlackwellSimError, match="plot format must be one of png, svg, got 'gif'"):
        write_plots(frame(), b200, tmp_path, fmt="gif")
