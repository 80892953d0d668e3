"""Quality metrics and the compare() table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from blackwell_sim.numerics import cast, compare, flushed_to_zero, mse, quantize, relative_error, sqnr_db


def test_metric_values():
    x = np.float32([3.0, -4.0, 0.0, 1.0])
    y = np.float32([3.0, -4.0, 0.5, 0.0])
    # signal 26, noise 0.25 + 1 = 1.25
    assert sqnr_db(x, y) == pytest.approx(10 * math.log10(26 / 1.25), abs=1e-12)
    assert mse(x, y) == pytest.approx(1.25 / 4, abs=1e-15)
    assert relative_error(x, y) == pytest.approx(math.sqrt(1.25 / 26), abs=1e-15)
    assert flushed_to_zero(x, y) == pytest.approx(1 / 3)        # 1.0 -> 0 among 3 nonzeros
    assert sqnr_db(x, x) == math.inf and relative_error(x, x) == 0.0
    assert flushed_to_zero(np.zeros(3, np.float32), np.zeros(3, np.float32)) == 0.0


def test_compare_table():
    x = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32)
    table = compare(x, ["nvfp4", {"fmt": "mxfp4", "scale_rule": "rceil", "label": "mxfp4 rceil"}, "bf16"])
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["format", "sqnr_db", "mse", "rel_err", "flushed_to_zero", "bits_per_element"]
    assert table["format"].tolist() == ["nvfp4", "mxfp4 rceil", "bf16"]
    y = quantize(x, "nvfp4").dequantize()
    row = table.iloc[0]
    assert row.sqnr_db == sqnr_db(x, y) and row.mse == mse(x, y) and row.rel_err == relative_error(x, y)
    assert row.flushed_to_zero == flushed_to_zero(x, y)
    assert row.bits_per_element == pytest.approx(4.5 + 32 / x.size)   # 4 + 8/16 + fp32 global scale
    assert table.iloc[1].bits_per_element == 4.25
    assert table.iloc[2].sqnr_db == sqnr_db(x, cast(x, "bf16")) and table.iloc[2].bits_per_element == 16
    assert table.iloc[0].sqnr_db > table.iloc[1].sqnr_db


def test_compare_and_metric_errors():
    x = np.ones((4, 32), np.float32)
    with pytest.raises(ValueError, match="unknown format 'int3'"):
        compare(x, ["int3"])
    with pytest.raises(ValueError, match="y: shape"):
        mse(x, x[:2])
    with pytest.raises(ValueError, match="x: expected real"):
        sqnr_db(np.ones(3, np.int32), np.ones(3, np.float32))
