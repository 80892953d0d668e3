"""2:4 and 1:2 structured sparsity: pruning rule, compression, metadata, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blackwell_sim.numerics import (
    compress_1_2,
    compress_2_4,
    decompress_1_2,
    decompress_2_4,
    is_1_2_sparse,
    is_2_4_sparse,
    pack_metadata,
    prune_1_2,
    prune_2_4,
    unpack_metadata,
)

VALID_2_4_NIBBLES = {0x4, 0x8, 0x9, 0xC, 0xD, 0xE}   # PTX sparse-MMA metadata values


def test_prune_keeps_two_largest_with_ties_to_lower_index():
    x = np.float32([[1, -5, 3, 2,   7, 7, 7, 7,   0, 0, 0, 0,   0, -2, 2, 1,   0.5, 0, 0, 0]])
    assert prune_2_4(x).tolist() == [[0, -5, 3, 0,  7, 7, 0, 0,  0, 0, 0, 0,  0, -2, 2, 0,  0.5, 0, 0, 0]]
    values, indices = compress_2_4(prune_2_4(x))
    assert values.tolist() == [[-5, 3, 7, 7, 0, 0, -2, 2, 0.5, 0]]
    assert indices.tolist() == [[1, 2, 0, 1, 0, 1, 1, 2, 0, 1]]


def test_round_trip_metadata_and_axis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    pruned = prune_2_4(x)
    assert is_2_4_sparse(pruned) and not is_2_4_sparse(x)
    values, indices = compress_2_4(pruned)
    assert values.shape == (8, 32) and indices.shape == (8, 32) and indices.dtype == np.uint8
    np.testing.assert_array_equal(decompress_2_4(values, indices), pruned)
    nibbles = indices[:, 0::2] | (indices[:, 1::2] << 2)
    assert set(np.unique(nibbles)) <= VALID_2_4_NIBBLES
    packed = pack_metadata(indices)
    assert packed.shape == (8, 8)
    np.testing.assert_array_equal(packed & 0x0F, nibbles[:, 0::2])     # group 2j in the low nibble
    np.testing.assert_array_equal(unpack_metadata(packed, 32), indices)
    pruned0 = prune_2_4(x.T.copy(), axis=0)
    np.testing.assert_array_equal(pruned0, prune_2_4(x).T)
    v0, i0 = compress_2_4(pruned0, axis=0)
    np.testing.assert_array_equal(v0, values.T)
    np.testing.assert_array_equal(decompress_2_4(v0, i0, axis=0), pruned0)


def test_one_two_rule_for_tf32():
    x = np.float32([[3, -4, 0, 0, 2, 2, 0.5, -0.25]])
    pruned = prune_1_2(x)
    assert pruned.tolist() == [[0, -4, 0, 0, 2, 0, 0.5, 0]]
    assert is_1_2_sparse(pruned) and not is_1_2_sparse(x)
    values, indices = compress_1_2(pruned)
    assert values.tolist() == [[-4, 0, 2, 0.5]] and indices.tolist() == [[1, 0, 0, 0]]
    np.testing.assert_array_equal(decompress_1_2(values, indices), pruned)
    packed = pack_metadata(indices, group=2)
    assert packed.tolist() == [[0b0001]]
    np.testing.assert_array_equal(unpack_metadata(packed, 4, group=2), indices)


def test_validation():
    with pytest.raises(ValueError, match="axis -1 has size 6, not a multiple of the group size 4"):
        prune_2_4(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="more than 2 nonzeros; prune first"):
        compress_2_4(np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="strictly increasing"):
        decompress_2_4(np.ones((1, 2), np.float32), np.array([[2, 1]], np.uint8))
    with pytest.raises(ValueError, match="0..3"):
        decompress_2_4(np.ones((1, 2), np.float32), np.array([[1, 4]], np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        prune_2_4(np.float32([[np.nan, 1, 2, 3]]))
    with pytest.raises(ValueError, match="x: expected real floating-point"):
        prune_2_4(np.ones((1, 4), np.int64))
    with pytest.raises(ValueError, match="indices"):
        decompress_2_4(np.ones((1, 2), np.float32), np.ones((1, 2), np.float32))


@settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.sampled_from([4, 8, 16])),
                  elements=st.floats(-100, 100, width=32)))
def test_prune_properties(x):
    pruned = prune_2_4(x)
    assert is_2_4_sparse(pruned)
    np.testing.assert_array_equal(prune_2_4(pruned), pruned)              # idempotent
    groups, kept = np.abs(x).reshape(x.shape[0], -1, 4), np.abs(pruned).reshape(x.shape[0], -1, 4)
    # the kept magnitudes are the two largest of each group
    np.testing.assert_array_equal(np.sort(kept, axis=-1)[..., 2:], np.sort(groups, axis=-1)[..., 2:])
    values, indices = compress_2_4(pruned)
    np.testing.assert_array_equal(decompress_2_4(values, indices), pruned)
