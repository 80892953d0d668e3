"""Running sweeps: rows as documented, failing points recorded, resume, determinism, progress, plots."""

from __future__ import annotations

import json

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.sweep import load_spec, read_rows, run_sweep
from blackwell_sim.sweep.results import metrics_of
from blackwell_sim.sweep.runner import Progress

GEMM = "gemm:m=512,n=512,k=256,dtype=bf16"


def _spec(**kw):
    return load_spec(trace=kw.pop("trace", GEMM), vary=kw.pop("vary", ["sm.count=64,148", "m=256,512"]), **kw)


def test_rows_hold_params_metrics_status_and_hash(tmp_path):
    from blackwell_sim import simulate

    outcome = run_sweep(_spec(), tmp_path / "out", workers=0, progress=False)
    rows = read_rows(tmp_path / "out" / "results.jsonl")
    assert rows == outcome.rows and (outcome.points, outcome.ok, outcome.failed) == (4, 4, 0)
    assert [r["params"] for r in rows] == [{"sm.count": 64, "m": 256}, {"sm.count": 64, "m": 512},
                                           {"sm.count": 148, "m": 256}, {"sm.count": 148, "m": 512}]
    assert all(r["status"] == "ok" and len(r["hash"]) == 64 for r in rows)
    direct = simulate({"ops": [{"op": "gemm", "m": 512, "n": 512, "k": 256}]}, "b200",
                      overrides={"sm.count": 64}).summary
    assert rows[1]["metrics"]["total_time_s"] == direct["total_time_s"]
    assert rows[1]["metrics"]["achieved_tflops"] == direct["achieved_tflops"]
    assert "sim_wall_s" not in rows[1]["metrics"]          # host time: not reproducible, left out
    assert json.loads((tmp_path / "out" / "spec.json").read_text())["vary"] == {"sm.count": [64, 148], "m": [256, 512]}


def test_a_failing_point_records_its_error_and_the_sweep_goes_on(tmp_path):
    trace = tmp_path / "two-ranks.yaml"
    trace.write_text("ops:\n- {op: gemm, m: 256, n: 256, k: 256, rank: 1}\n")
    outcome = run_sweep(load_spec(trace=str(trace), vary=["config=b200,hgx-b200-8"]), tmp_path / "out",
                        workers=0, progress=False)
    failed, ok = outcome.rows
    assert (outcome.ok, outcome.failed) == (1, 1)
    assert failed["status"] == "error" and failed["metrics"] is None
    assert failed["error"] == (f"{trace.resolve()}: op 0 ('gemm_0'): rank: rank 1 is outside the system: config "
                               "'NVIDIA B200' is one GPU (rank 0); use a system preset such as hgx-b200-8")
    assert ok["status"] == "ok" and ok["metrics"]["gpus"] == 8


def test_identical_inputs_give_byte_identical_rows_across_runs_and_executors(tmp_path):
    run_sweep(_spec(), tmp_path / "serial", workers=0, progress=False)
    run_sweep(_spec(), tmp_path / "again", workers=0, progress=False)
    run_sweep(_spec(), tmp_path / "procs", workers=2, progress=False)
    serial = (tmp_path / "serial" / "results.jsonl").read_bytes()
    assert serial == (tmp_path / "again" / "results.jsonl").read_bytes()
    assert serial == (tmp_path / "procs" / "results.jsonl").read_bytes()


def test_resume_keeps_done_points_and_reruns_failed_stale_and_missing_ones(tmp_path):
    out = tmp_path / "out"
    full = run_sweep(_spec(), out, workers=0, progress=False)
    reference = (out / "results.jsonl").read_bytes()
    with pytest.raises(BlackwellSimError, match="results.jsonl exists; pass --resume"):
        run_sweep(_spec(), out, workers=0, progress=False)
    again = run_sweep(_spec(), out, workers=0, progress=False, resume=True)
    assert (again.resumed, again.ok) == (4, 4) and (out / "results.jsonl").read_bytes() == reference
    rows = [json.loads(line) for line in reference.decode().splitlines()]
    rows[0] = {**rows[0], "status": "error", "metrics": None, "error": "x"}     # failed: runs again
    rows[1] = {**rows[1], "hash": "0" * 64}                                      # stale: runs again
    del rows[2]                                                                  # missing: runs
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows[::-1])
    (out / "results.jsonl").write_text(text + '{"point":9,"par')                # a cut last write
    resumed = run_sweep(_spec(), out, workers=0, progress=False, resume=True)
    assert resumed.resumed == 1 and resumed.ok == 4 and resumed.rows == full.rows
    assert (out / "results.jsonl").read_bytes() == reference                    # each point once, in order


def test_resume_with_a_changed_spec_keeps_only_matching_points(tmp_path):
    out = tmp_path / "out"
    run_sweep(_spec(vary=["sm.count=64,148"]), out, workers=0, progress=False)
    outcome = run_sweep(_spec(vary=["sm.count=148,100"]), out, workers=0, progress=False, resume=True)
    assert outcome.resumed == 1 and [r["params"]["sm.count"] for r in outcome.rows] == [148, 100]
    assert [r["point"] for r in read_rows(out / "results.jsonl")] == [0, 1]


def test_progress_counts_and_eta_from_this_runs_pace():
    p = Progress(total=10, done=4, resumed=4, started_s=100.0)
    assert p.eta_s(101.0) is None and p.remaining == 6
    p.add("ok")
    p.add("error")
    assert (p.done, p.failed, p.remaining) == (5, 1, 4)
    assert p.eta_s(102.0) == pytest.approx(2.0 / 2 * 4)
    assert p.text(102.0) == "done 5, failed 1, remaining 4, ETA 4 s"


def test_progress_bar_shows_points_and_counts_on_its_stream():
    import io

    stream = io.StringIO()
    p = Progress(total=2, stream=stream, started_s=0.0)
    p.add("ok")
    p.add("error")
    p.close()
    text = stream.getvalue()
    assert "sweep" in text and "2/2" in text and "done 1, failed 1, remaining 0" in text


def test_metrics_drop_wall_clock_and_derive_tokens_per_second():
    summary = {"total_time_s": 0.5, "sim_wall_s": 3.2, "functional": {"rows": 1, "functional_s": 1.0},
               "achieved_tflops": float("nan")}
    m = metrics_of(summary, tokens_per_step=64)
    assert m == {"total_time_s": 0.5, "functional": {"rows": 1}, "achieved_tflops": None,
                 "derived": {"tokens_per_step": 64, "tokens_per_s": 128.0}}
    assert metrics_of({"total_time_s": 0.5}, None)["derived"] == {}


def test_plots_line_for_one_key_heatmap_for_two(tmp_path):
    from blackwell_sim.sweep import plot_sweep, write_sweep_plot

    two = run_sweep(_spec(), tmp_path / "a", workers=0, progress=False)
    fig = plot_sweep(two.rows, _spec().vary, "achieved_tflops")
    assert len(fig.axes[0].images) == 1 and len(fig.axes[0].texts) == 4       # heatmap, annotated cells
    spec = _spec(vary=["config=b200,h100-sxm"])
    one = run_sweep(spec, tmp_path / "b", workers=0, progress=False)
    fig = plot_sweep(one.rows, spec.vary, "formats.bf16.pct_of_peak")
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [0, 1]                                    # categories in spec order
    assert list(line.get_ydata()) == [r["metrics"]["formats"]["bf16"]["pct_of_peak"] for r in one.rows]
    path = write_sweep_plot(one.rows, spec.vary, "total_time_s", tmp_path / "b")
    first = path.read_bytes()
    assert path.name == "plot-total_time_s.png" and first[:4] == b"\x89PNG"
    assert write_sweep_plot(one.rows, spec.vary, "total_time_s", tmp_path / "b").read_bytes() == first
    with pytest.raises(BlackwellSimError, match="no numeric metric 'achieved_tflop' in the results; did you mean 'achieved_tflops'"):
        plot_sweep(one.rows, spec.vary, "achieved_tflop")
    three = load_spec(trace=GEMM, vary=["sm.count=64", "m=256", "n=256"])
    with pytest.raises(BlackwellSimError, match="needs one varied key .* varies 3"):
        plot_sweep(two.rows, three.vary, "total_time_s")


def test_each_row_is_written_before_the_next_point_starts_in_process(tmp_path, monkeypatch):
    from blackwell_sim.sweep import runner

    seen, original = [], runner.run_point
    results = tmp_path / "out" / "results.jsonl"

    def spy(point):
        seen.append(len(read_rows(results)) if results.exists() else 0)
        return original(point)

    monkeypatch.setattr(runner, "run_point", spy)
    run_sweep(_spec(), tmp_path / "out", workers=0, progress=False)
    assert seen == [0, 1, 2, 3]


def test_metric_roots_checked_before_running_are_the_rows_metrics(tmp_path):
    from blackwell_sim.sweep.plot import METRIC_ROOTS

    row = run_sweep(_spec(vary=["m=256"]), tmp_path / "o", workers=0, progress=False).rows[0]
    assert set(row["metrics"]) - {"config"} == set(METRIC_ROOTS)
