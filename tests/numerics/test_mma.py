"""Bit-exact tensor-core MMA: B200 silicon vectors, matrix mode == scalar, pinned mechanisms."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from blackwell_sim.numerics.mma import mma_dot
from blackwell_sim.numerics.mma_matrix import mma_matrix
from blackwell_sim.numerics.mma_words import resolve_instruction

DATA = Path(__file__).resolve().parents[1] / "data" / "b200_mma"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "b200_mma"
VECTOR_KEYS = ("a_format", "b_format", "scaling", "kind", "scale_vec", "d_format")


def _load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


VECTORS = _load("vectors.jsonl") + _load("vectors_extra.jsonl")


def _kwargs(v: dict) -> dict:
    kw = {k: v[k] for k in VECTOR_KEYS if k in v}
    kw["scale_a"] = v.get("scale_a", ())
    kw["scale_b"] = v.get("scale_b", ())
    return kw


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


# ----------------------------------------------------------------------------------------------
# Silicon vectors
# ----------------------------------------------------------------------------------------------

def test_vector_copy_matches_shared_data():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent; the tests use the copy in {DATA}")
    assert (DATA / "vectors.jsonl").read_bytes() == (SHARED / "vectors.jsonl").read_bytes()
    assert len(_load("vectors.jsonl")) == 40


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_b200_vector_scalar(vec):
    got = mma_dot(vec["a"], vec["b"], vec["c"], **_kwargs(vec))
    assert got == vec["expected"], f"{vec['name']}: got {got:#x}, B200 gave {vec['expected']:#x}"


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_b200_vector_matrix(vec):
    kw = _kwargs(vec)
    sa, sb = kw.pop("scale_a"), kw.pop("scale_b")
    d = mma_matrix(np.array([vec["a"]]), np.array([vec["b"]]), np.array([[vec["c"]]]),
                   scale_a=np.array([sa]) if len(sa) else None,
                   scale_b=np.array([sb]) if len(sb) else None, **kw)
    assert int(d[0, 0]) == vec["expected"]


# ----------------------------------------------------------------------------------------------
# Matrix mode == scalar mode on random words with special values
# ----------------------------------------------------------------------------------------------

WIDTH = {"tf32": 32, "bf16": 32, "f16": 16, "e4m3": 8, "e5m2": 8, "e2m3": 6, "e3m2": 6, "e2m1": 4}
SPECIAL_WORDS = {  # zeros, NaN, Inf, subnormals, max / min normal, pre-truncation corner cases
    "tf32": [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0x0000_2000,
             0x0000_0001, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x0080_0000],
    "f16": [0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x0001, 0x7BFF, 0xFBFF, 0x0400, 0x03FF],
    "e4m3": [0, 0x80, 0x7F, 0xFF, 0x7E, 0xFE, 0x01, 0x81, 0x08],
    "e5m2": [0, 0x80, 0x7C, 0xFC, 0x7D, 0xFF, 0x7B, 0xFB, 0x01],
    "e2m3": [0, 0x20, 0x1F, 0x3F, 0x01],
    "e3m2": [0, 0x20, 0x1F, 0x3F, 0x01],
    "e2m1": [0, 0x8, 0x7, 0xF, 0x1],
}
SPECIAL_WORDS["bf16"] = SPECIAL_WORDS["tf32"] + [0x0001_0000]
C_F32_SPECIALS = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x3F80_0000, 0x0000_0001,
                  0x807F_FFFF, 0x7F7F_FFFF]
C_F16_SPECIALS = [0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x3C00, 0x0001, 0x7BFF]
SCALE_SPECIALS = {"ue8m0": [0, 0xFF, 127, 254, 1], "ue4m3": [0, 0x7F, 0xFF, 0x7E, 0x01, 0x38]}

CONFIGS = [dict(a_format=f) for f in WIDTH] + [
    dict(a_format="f16", d_format="f16"),
    dict(a_format="e4m3", d_format="f16"),
    dict(a_format="e2m1", b_format="e4m3", d_format="f16"),
    dict(a_format="e5m2", b_format="e2m3"),
    dict(a_format="e3m2", b_format="e2m1"),
    *[dict(a_format=f, scaling="ue8m0", kind="mxf8f6f4")
      for f in ("e4m3", "e5m2", "e2m3", "e3m2", "e2m1")],
    dict(a_format="e4m3", b_format="e2m1", scaling="ue8m0", kind="mxf8f6f4"),
    dict(a_format="e2m1", scaling="ue8m0", kind="mxf4"),
    dict(a_format="e2m1", scaling="ue8m0", kind="mxf4nvf4", scale_vec=2),
    dict(a_format="e2m1", scaling="ue8m0", kind="mxf4nvf4", scale_vec=4),
    dict(a_format="e2m1", scaling="ue4m3", scale_vec=4),
]
REGIMES = ("random", "specials", "small")


def _mix(rng, pool, shape, random_words, p):
    out = random_words.copy()
    pick = rng.random(shape) < p
    out[pick] = rng.choice(np.array(pool, dtype=np.int64), size=int(pick.sum()))
    return out


def _case(rng, cfg, regime, m=5, n=4, n_instr=2):
    instr = resolve_instruction(cfg["a_format"], cfg.get("b_format"), scaling=cfg.get("scaling"),
                                kind=cfg.get("kind"), scale_vec=cfg.get("scale_vec"),
                                d_format=cfg.get("d_format", "f32"))
    k = instr.k * n_instr
    p_special = {"random": 0.1, "specials": 0.3, "small": 0.02}[regime]
    words = []
    for fmt, rows in ((instr.a_format, m), (instr.b_format, n)):
        w = rng.integers(0, 1 << WIDTH[fmt], size=(rows, k), dtype=np.int64)
        w[rng.random((rows, k)) < 0.25] = 0
        words.append(_mix(rng, SPECIAL_WORDS[fmt], (rows, k), w, p_special))
    f16 = instr.d_format == "f16"
    c = rng.integers(0, 1 << (16 if f16 else 32), size=(m, n), dtype=np.int64)
    if regime == "small" and not f16:  # C near the product magnitudes / subnormal
        c = (rng.integers(100, 140, size=(m, n)) << 23) | (c & 0x807F_FFFF)
    c = _mix(rng, C_F16_SPECIALS if f16 else C_F32_SPECIALS, (m, n), c, 0.3)
    kw = {}
    if instr.scaling:
        nb = k // instr.scale_block
        lo_hi = {"random": (0, 256), "specials": (110, 145), "small": (0, 40)}[regime]
        if instr.scaling == "ue4m3":
            lo_hi = {"random": (0, 128), "specials": (40, 70), "small": (0, 16)}[regime]
        sa = rng.integers(*lo_hi, size=(m, nb))
        sb = rng.integers(*lo_hi, size=(n, nb))
        kw = dict(scale_a=_mix(rng, SCALE_SPECIALS[instr.scaling], sa.shape, sa, 0.05),
                  scale_b=_mix(rng, SCALE_SPECIALS[instr.scaling], sb.shape, sb, 0.05))
    return words[0], words[1], c, kw


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_matrix_equals_scalar(cfg, regime):
    rng = np.random.default_rng(zlib.crc32(repr((sorted(cfg.items()), regime)).encode()))
    a, b, c, kw = _case(rng, cfg, regime)
    d = mma_matrix(a, b, c, **cfg, **kw)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            sk = {} if not kw else dict(scale_a=kw["scale_a"][i].tolist(),
                                        scale_b=kw["scale_b"][j].tolist())
            ref = mma_dot(a[i].tolist(), b[j].tolist(), int(c[i, j]), **cfg, **sk)
            assert int(d[i, j]) == ref, f"[{i},{j}]: matrix {int(d[i, j]):#x} != scalar {ref:#x}"


SPARSE_CONFIGS = [dict(a_format="tf32"), dict(a_format="bf16"), dict(a_format="e5m2"),
                  dict(a_format="e2m1", scaling="ue8m0", kind="mxf4"),
                  dict(a_format="e2m1", scaling="ue4m3")]


@pytest.mark.parametrize("cfg", SPARSE_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_sparse_matrix_equals_scalar(cfg):
    rng = np.random.default_rng(zlib.crc32(repr(sorted(cfg.items())).encode()))
    a, b, c, kw = _case(rng, cfg, "specials", n_instr=1)
    a, b = np.concatenate([a, a], axis=1), np.concatenate([b, b[:, ::-1]], axis=1)
    if kw:
        kw = {name: np.concatenate([s, s], axis=1) for name, s in kw.items()}
    group, keep = (2, 1) if cfg["a_format"] == "tf32" else (4, 2)
    m, k = a.shape
    order = np.argsort(rng.random((m, k // group, group)), axis=-1)[..., :keep]
    active = np.zeros((m, k // group, group), bool)
    np.put_along_axis(active, order, True, axis=-1)
    active = active.reshape(m, k)
    if cfg.get("scaling") == "ue4m3":  # sparse NVFP4: one scale per 32 logical K
        kw = {name: s[:, ::2] for name, s in kw.items()}
    d = mma_matrix(a, b, c, **cfg, **kw, sparse_active=active)
    for i in range(m):
        for j in range(b.shape[0]):
            sk = {} if not kw else dict(scale_a=kw["scale_a"][i].tolist(),
                                        scale_b=kw["scale_b"][j].tolist())
            ref = mma_dot(a[i].tolist(), b[j].tolist(), int(c[i, j]), **cfg, **sk,
                          sparse_active=active[i].tolist())
            assert int(d[i, j]) == ref, f"[{i},{j}]: matrix {int(d[i, j]):#x} != scalar {ref:#x}"


def test_matrix_row_chunking_does_not_change_results():
    rng = np.random.default_rng(7)
    cfg = dict(a_format="e2m1", scaling="ue4m3")
    a, b, c, kw = _case(rng, cfg, "random", m=9, n=6, n_instr=3)
    whole = mma_matrix(a, b, c, **cfg, **kw)
    assert np.array_equal(whole, mma_matrix(a, b, c, **cfg, **kw, chunk_m=2))
    cfg = dict(a_format="e4m3")
    a, b, c, _ = _case(rng, cfg, "random", m=9, n=6, n_instr=3)
    assert np.array_equal(mma_matrix(a, b, c, **cfg), mma_matrix(a, b, c, **cfg, chunk_m=4))


# ----------------------------------------------------------------------------------------------
# Hand-built cases that pin the mechanisms
# ----------------------------------------------------------------------------------------------

def test_window_truncation_differs_from_fp32_sum():
    # 1 + 8 * (3 * 2**-27): each small product is 0.75 units of the 2**-25 window -> truncated
    # to 0, so the tensor core returns exactly 1.0; an fp32 (or fp64-then-fp32) sum rounds the
    # exact 1 + 3 * 2**-24 to 1 + 2**-22.
    a = [f32(1.0)] + [f32(3 * 2.0**-27)] * 8 + [0] * 7
    b = [f32(1.0)] * 9 + [0] * 7
    fp32_sum = f32(float(np.float32(1.0 + 8 * 3 * 2.0**-27)))
    assert fp32_sum == 0x3F80_0002
    assert mma_dot(a, b, a_format="bf16") == 0x3F80_0000


def test_round_toward_zero_normalisation():
    # 36 - 2**-30 survives the 39-bit MXF4 window but is below half an F32 ulp of 36: RZ gives
    # the next float below 36 where round-to-nearest would give 36.
    a = [0x7] + [0] * 31 + [0xA] + [0] * 31  # 6.0 ... -1.0
    b = [0x7] + [0] * 31 + [0x2] + [0] * 31  # 6.0 ... 1.0
    got = mma_dot(a, b, a_format="e2m1", scaling="ue8m0", kind="mxf4", scale_a=[127, 127 - 15],
                  scale_b=[127, 127 - 15])
    assert got == f32(36.0) - 1


def test_nvfp4_scale_anchored_window_floor():
    # Block 0: 0.5 * 0.5 with UE4M3 scales 448 each -> 50176, max scale-pair exponent 16, so
    # q = max(16 - 39, 16 - 35) = -19.  Block 1: -(0.5 * 0.5) * 2**-9 * 2**-9 = -2**-20 is half
    # a unit of that window and truncates to 0: the result is exactly 50176 (a 39-bit window
    # alone would keep it and RZ would give the float below 50176).
    a = [0x1] + [0] * 15 + [0x9] + [0] * 47
    b = [0x1] + [0] * 15 + [0x1] + [0] * 47
    scales = [0x7E, 0x01, 0x38, 0x38]
    assert mma_dot(a, b, a_format="e2m1", scaling="ue4m3", scale_a=scales,
                   scale_b=scales) == f32(50176.0)


def test_chaining_along_k():
    # Instruction 1 (K=16) sums 16 * 3 * 2**-27 exactly (its own window) to 3 * 2**-23; the
    # second instruction adds 1.0 with that as C: 1 + 3 * 2**-23 is exact.  In the opposite
    # order the small products meet 1.0 in one window and are truncated away.
    small, one = [f32(3 * 2.0**-27)] * 16, [f32(1.0)] + [0] * 15
    ones = [f32(1.0)] * 32
    assert mma_dot(small + one, ones, a_format="bf16") == f32(1.0) + 3
    assert mma_dot(one + small, ones, a_format="bf16") == f32(1.0)
    # Chain == explicit D -> C hand-off of two single instructions.
    d1 = mma_dot(small, ones[:16], a_format="bf16")
    assert mma_dot(one, ones[:16], d1, a_format="bf16") == f32(1.0) + 3


def test_nan_propagation_and_canonical_word():
    a = np.full((3, 32), 0x38)  # e4m3 1.0
    b = np.full((2, 32), 0x38)
    a[1, 5] = 0x7F  # NaN in row 1 only
    d = mma_matrix(a, b, a_format="e4m3")
    assert (d[1] == 0x7FFF_FFFF).all()
    assert (d[[0, 2]] == f32(32.0)).all()
    # Any NaN payload in C becomes the canonical word; F16 D uses 0x7FFF.
    assert mma_dot([0] * 32, [0] * 32, 0xFFC0_1234, a_format="e4m3") == 0x7FFF_FFFF
    assert mma_dot([0] * 32, [0] * 32, 0xFE01, a_format="e4m3", d_format="f16") == 0x7FFF


def test_infinities():
    one, inf, ninf = 0x3C, 0x7C, 0xFC  # e5m2
    pad = [0] * 30
    assert mma_dot([inf, one] + pad, [one, one] + pad, a_format="e5m2") == 0x7F80_0000
    assert mma_dot([inf, ninf] + pad, [one, one] + pad, a_format="e5m2") == 0x7FFF_FFFF
    assert mma_dot([inf, 0] + pad, [0, one] + pad, a_format="e5m2") == 0x7FFF_FFFF  # Inf x 0
    # +Inf product in a later instruction meets the -Inf carried in C: NaN.
    assert mma_dot([ninf] + pad + [0] + [inf] + pad + [0], [one] * 64, a_format="e5m2") \
        == 0x7FFF_FFFF
    assert mma_dot([0] * 32, [0] * 32, 0xFF80_0000, a_format="e5m2") == 0xFF80_0000


def test_scale_nan():
    ones = [0x2] * 64  # e2m1 1.0
    assert mma_dot(ones, ones, a_format="e2m1", scaling="ue8m0", kind="mxf4",
                   scale_a=[127, 0xFF], scale_b=[127, 127]) == 0x7FFF_FFFF
    for nan_byte in (0x7F, 0xFF):  # UE4M3 has no sign bit: 0xFF is NaN too
        assert mma_dot(ones, ones, a_format="e2m1", scaling="ue4m3",
                       scale_a=[0x38, 0x38, nan_byte, 0x38], scale_b=[0x38] * 4) == 0x7FFF_FFFF
    sa = np.full((2, 4), 0x38)
    sa[0, 3] = 0x7F
    d = mma_matrix(np.full((2, 64), 2), np.full((3, 64), 2), scaling="ue4m3", a_format="e2m1",
                   scale_a=sa, scale_b=np.full((3, 4), 0x38))
    assert (d[0] == 0x7FFF_FFFF).all() and (d[1] == f32(64.0)).all()


def test_zero_results_and_c_passthrough():
    # Unscaled: an exact zero is +0 even from C = -0; block-scaled paths return C untouched
    # when every product is zero.
    assert mma_dot([0] * 16, [0] * 16, 0x8000_0000, a_format="f16") == 0
    assert mma_dot([0] * 64, [0] * 64, 0x8000_0000, a_format="e2m1", scaling="ue4m3",
                   scale_a=[0x38] * 4, scale_b=[0x38] * 4) == 0x8000_0000
    assert mma_dot([0x2] * 64, [0x2] * 64, 0x8000_0000, a_format="e2m1", scaling="ue4m3",
                   scale_a=[0] * 4, scale_b=[0x38] * 4) == 0x8000_0000  # zero UE4M3 scale


def test_overflow_is_infinite_and_f16_rounds_to_nearest_even():
    big = f32(2.0**127)
    assert mma_dot([big, big] + [0] * 6, [f32(1.0)] * 8, a_format="tf32") == 0x7F80_0000
    # F16 D: 2049 needs 12 bits -> RNE tie to even gives 2048; 2051 -> 2052.
    one, k = 0x38, 32  # e4m3 1.0; 2049 = 2048 + 1
    a = [0x78, 0x38] + [0] * (k - 2)  # 256, 1
    b = [0x50, one] + [0] * (k - 2)  # 8, 1 -> 256 * 8 + 1 = 2049
    assert mma_dot(a, b, a_format="e4m3", d_format="f16") == 0x6800  # 2048
    a[1] = 0x44  # 3.0 -> 2051
    assert mma_dot(a, b, a_format="e4m3", d_format="f16") == 0x6802  # 2052


def test_mxf4_subnormal_group_floor():
    # Group 0 (scale 2**-145) gives 36 * 2**-145, an F32 subnormal; group 1 (lower scale pair
    # 2**-177) gives -2**-177, which is nonzero in the 2**-180 window but under the 2**-174
    # floor: it is dropped, so the result is exactly 576 subnormal quanta instead of 575.
    a = [0x7] + [0] * 15 + [0xA] + [0] * 47
    b = [0x7] + [0] * 15 + [0x2] + [0] * 47
    kw = dict(a_format="e2m1", scaling="ue8m0", kind="mxf4nvf4", scale_vec=4,
              scale_a=[55, 39, 127, 127], scale_b=[54, 38, 127, 127])
    assert mma_dot(a, b, **kw) == 576
    d = mma_matrix(np.array([a]), np.array([b]), **{**kw, "scale_a": np.array([kw["scale_a"]]),
                                                       "scale_b": np.array([kw["scale_b"]])})
    assert int(d[0, 0]) == 576


def test_sparse_disabled_positions_are_absent():
    # A NaN in B at a position that A's 2:4 metadata disables has no effect.
    k = 64  # sparse e4m3 instruction: K doubles to 64
    active = [(i % 4) < 2 for i in range(k)]
    a = [0x38 if on else 0 for on in active]
    b = [0x38 if on else 0x7F for on in active]
    assert mma_dot(a, b, a_format="e4m3", sparse_active=active) == f32(32.0)
    d = mma_matrix(np.array([a]), np.array([b]), a_format="e4m3",
                   sparse_active=np.array([active]))
    assert int(d[0, 0]) == f32(32.0)
    assert mma_dot(a + a, b + b, a_format="e4m3") == 0x7FFF_FFFF  # dense: NaN x 0


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    (dict(a=[0] * 32, b=[0] * 32, a_format="e9m9"), "a_format"),
    (dict(a=[0] * 31, b=[0] * 31, a_format="e4m3"), "K=31"),
    (dict(a=[0] * 32, b=[0] * 16, a_format="e4m3"), "b:"),
    (dict(a=[0] * 16, b=[0] * 16, a_format="bf16", b_format="f16"), "b_format"),
    (dict(a=[0] * 64, b=[0] * 64, a_format="e2m1", scaling="ue4m3", scale_a=[0x38] * 3,
          scale_b=[0x38] * 4), "scale_a"),
    (dict(a=[0] * 64, b=[0] * 64, a_format="e2m1", scaling="ue8m0", kind="mxf4",
          scale_a=[127] * 2, scale_b=[127] * 3), "scale_b"),
    (dict(a=[0] * 32, b=[0] * 32, a_format="e4m3", scaling="ue8m0", d_format="f16",
          scale_a=[127], scale_b=[127]), "d_format"),
    (dict(a=[0] * 32, b=[0] * 32, a_format="e4m3", scaling="ue4m3"), "a_format"),
    (dict(a=[0] * 32, b=[0] * 32, a_format="e4m3", scaling="e8m0"), "scaling"),
    (dict(a=[0] * 32, b=[0] * 32, a_format="e4m3", kind="mxf4", scaling="ue8m0"), "needs e2m1"),
    (dict(a=[0] * 8, b=[0] * 8, a_format="tf32", d_format="f16"), "d_format"),
    (dict(a=[-1] * 32, b=[0] * 32, a_format="e4m3"), "a:"),
])
def test_bad_input_names_the_argument(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        mma_dot(**kwargs)


def test_matrix_bad_shapes():
    with pytest.raises(ValueError, match="b:"):
        mma_matrix(np.zeros((2, 32), int), np.zeros((2, 64), int), a_format="e4m3")
    with pytest.raises(ValueError, match="c:"):
        mma_matrix(np.zeros((2, 32), int), np.zeros((3, 32), int), np.zeros((3, 2), int),
                   a_format="e4m3")
    with pytest.raises(ValueError, match="scale_b"):
        mma_matrix(np.zeros((2, 64), int), np.zeros((3, 64), int), a_format="e2m1",
                   scaling="ue4m3", scale_a=np.zeros((2, 4), int), scale_b=np.zeros((3, 5), int))
    with pytest.raises(ValueError, match="a:"):
        mma_matrix(np.zeros((2, 32)), np.zeros((3, 32)), a_format="e4m3")  # floats, not words
