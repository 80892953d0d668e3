"""Training-recipe pieces: the random Hadamard transform, delayed scaling, and named recipes that
say how each operand of the three GEMMs of a linear layer is quantized.

GEMMs of a linear layer ``Y = X W^T`` (TransformerEngine naming; K is the reduction axis):

* ``fprop``: ``Y = X W^T`` -- operands ``input`` (X) and ``weight`` (W), K = in_features.
* ``dgrad``: ``dX = dY W`` -- operands ``grad_output`` (dY) and ``weight``, K = out_features.
* ``wgrad``: ``dW = dY^T X`` -- operands ``grad_output`` and ``input``, K = tokens.

Sources: TransformerEngine ``common/recipe/__init__.py`` (``NVFP4BlockScaling``: 2D 16x16
weight scaling, stochastic rounding for gradients, RHT "only applied to column-wise usage so that
it can be used for wgrad GEMM"; ``DelayedScaling``; ``MXFP8BlockScaling``), TE
``pytorch/tensor/nvfp4_tensor.py`` (sign vector, ``get_rht_matrix``) and TE
``pytorch/custom_recipes/quantization_nvfp4.py`` (``_apply_rht``: ``x_blocks @ (diag(S) H16/4)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.numerics.formats import FP32_MAX, as_float32, get_format
from blackwell_sim.numerics.quantize import QuantizedTensor, quantize, quantize_per_tensor
from blackwell_sim.numerics.rounding import cast
from blackwell_sim.numerics.scaling import current_scale

HADAMARD_SIZE = 16
# TE pytorch/tensor/nvfp4_tensor.py, get_wgrad_sign_vector ("https://xkcd.com/221/")
WGRAD_SIGN_VECTOR = (1, 1, 1, -1, 1, -1, -1, -1, -1, -1, -1, 1, -1, 1, -1, -1)
GEMMS = ("fprop", "dgrad", "wgrad")
GEMM_OPERANDS = {"fprop": ("input", "weight"), "dgrad": ("grad_output", "weight"),
                 "wgrad": ("grad_output", "input")}
AMAX_ALGOS = ("max", "most_recent")


def hadamard_matrix(size: int = HADAMARD_SIZE) -> np.ndarray:
    """Sylvester Hadamard matrix with entries +-1 (float64); ``size`` a power of two."""
    if size < 1 or size & (size - 1):
        raise BlackwellSimError(f"size: must be a power of two, got {size}")
    h = np.ones((1, 1))
    while h.shape[0] < size:
        h = np.block([[h, h], [h, -h]])
    return h


def rht_matrix(signs: tuple[int, ...] | None = WGRAD_SIGN_VECTOR) -> np.ndarray:
    """``diag(S) @ H16 / 4`` (float64, entries exactly +-1/4; TE ``get_rht_matrix``).

    Applied to row vectors as ``y = x @ rht_matrix()``, i.e. ``y_j = sum_i x_i S_i H_ij / 4``:
    the signs flip the *input* elements, then the Hadamard mixes them. ``signs=None``: no flips.
    The matrix is orthogonal, so ``x = y @ rht_matrix().T``.
    """
    s = np.ones(HADAMARD_SIZE) if signs is None else np.asarray(signs, dtype=np.float64)
    if s.shape != (HADAMARD_SIZE,) or not np.all(np.abs(s) == 1):
        raise BlackwellSimError(f"signs: need {HADAMARD_SIZE} entries of +-1, got {signs!r}")
    return (s[:, None] * hadamard_matrix(HADAMARD_SIZE)) / np.sqrt(HADAMARD_SIZE)


def random_hadamard_transform(x: object, axis: int = -1, *,
                              signs: tuple[int, ...] | None = WGRAD_SIGN_VECTOR,
                              inverse: bool = False, input_bf16: bool = True,
                              output_bf16: bool = True) -> np.ndarray:
    """16-point random Hadamard transform of ``x`` along ``axis`` in blocks of 16 (float32 result).

    Each block of 16 consecutive elements along ``axis`` is multiplied by :func:`rht_matrix`
    (``inverse=True``: by its transpose). ``input_bf16``: round the input to bf16 first (TE's RHT
    kernels take BF16 activations / gradients). The 16-term sums are exact in float64 for bf16
    inputs; they are rounded to fp32 (the tensor-core accumulator) and, with ``output_bf16``, to
    bf16 with RNE (DESIGN.md: "output rounded to bf16").
    """
    x32 = as_float32(x, "x")
    if x32.ndim == 0 or not -x32.ndim <= axis < x32.ndim:
        raise BlackwellSimError(f"axis: {axis!r} is out of range for an array of shape {x32.shape}")
    size = x32.shape[axis]
    if size % HADAMARD_SIZE:
        raise BlackwellSimError(
            f"x: axis {axis} has size {size}, not a multiple of the Hadamard size {HADAMARD_SIZE}")
    if input_bf16:
        x32 = cast(x32, "bf16", nan="zero")
    matrix = rht_matrix(signs)
    if inverse:
        matrix = matrix.T
    moved = np.moveaxis(x32, axis, -1)
    blocks = moved.reshape(-1, HADAMARD_SIZE).astype(np.float64)
    y = (blocks @ matrix).astype(np.float32).reshape(moved.shape)
    if output_bf16:
        y = cast(y, "bf16", nan="zero")
    return np.ascontiguousarray(np.moveaxis(y, -1, axis))


@dataclass
class DelayedScaling:
    """Per-tensor FP8 delayed scaling with an amax history (TE ``DelayedScaling`` semantics).

    ``quantize(x)`` uses the scale derived from *previous* amaxes, then records ``amax(x)`` and
    updates the scale for the next call: ``scale = (fp8_max / amax) / 2^margin`` with ``amax``
    the max over the history (``"max"``) or the latest entry (``"most_recent"``); the previous
    scale is kept when that amax is 0 or not finite; an fp32 overflow gives FLT_MAX.
    """

    fmt: str = "e4m3"
    amax_history_len: int = 1024
    amax_compute_algo: str = "max"
    margin: int = 0
    amax_history: np.ndarray = field(init=False, repr=False)
    scale: np.float32 = field(init=False)

    def __post_init__(self) -> None:
        if self.fmt not in ("e4m3", "e5m2"):
            raise BlackwellSimError(f"fmt: delayed scaling is for FP8 e4m3 / e5m2, got {self.fmt!r}")
        if self.amax_compute_algo not in AMAX_ALGOS:
            raise BlackwellSimError(
                f"amax_compute_algo: {self.amax_compute_algo!r}; known: {', '.join(AMAX_ALGOS)}")
        if int(self.amax_history_len) < 1:
            raise BlackwellSimError(f"amax_history_len: must be >= 1, got {self.amax_history_len}")
        self.amax_history = np.zeros(int(self.amax_history_len), dtype=np.float32)
        self.scale = np.float32(1.0)

    @property
    def scale_inv(self) -> np.float32:
        return np.float32(1.0) / self.scale

    def update(self, amax: float) -> np.float32:
        """Push ``amax`` (most recent first) and recompute the scale; returns the new scale."""
        self.amax_history = np.roll(self.amax_history, 1)
        self.amax_history[0] = np.float32(amax)
        if self.amax_compute_algo == "max":
            reference = float(np.max(self.amax_history))
        else:
            reference = float(self.amax_history[0])
        if np.isfinite(reference) and reference > 0:
            scale = current_scale(reference, get_format(self.fmt).max_normal, self.margin)
            self.scale = np.float32(min(float(scale), FP32_MAX))
        return self.scale

    def quantize(self, x: object) -> QuantizedTensor:
        """Quantize with the current scale, then update the history with ``amax(x)``."""
        x32 = as_float32(x, "x")
        qt = quantize_per_tensor(x32, f"fp8_{self.fmt}", float(self.scale))
        magnitude = np.abs(x32)
        amax = float(np.max(magnitude)) if magnitude.size else 0.0
        self.update(amax)
        return qt


@dataclass(frozen=True)
class OperandTreatment:
    """How one GEMM operand is prepared: ``fmt`` is a :func:`quantize` format or ``"bf16"`` /
    ``"fp32"`` (no scaling); ``hadamard`` applies the 16-point RHT along K first; ``scaling`` is
    ``"current"`` or, for per-tensor FP8, ``"delayed"`` (the caller owns the DelayedScaling state)."""

    fmt: str
    block_shape: tuple[int, ...] | None = None
    scale_rule: str | None = None
    policy: str | None = None
    rounding: str = "rne"
    hadamard: bool = False
    scaling: str = "current"

    def apply(self, x: object, axis: int = -1, *, rng: np.random.Generator | int | None = None,
              delayed: DelayedScaling | None = None) -> QuantizedTensor | np.ndarray:
        """Quantize ``x`` with K along ``axis``: a QuantizedTensor, or float32 values for
        ``bf16`` / ``fp32``. ``delayed`` supplies the scaling state for ``fp8_delayed``."""
        data = random_hadamard_transform(x, axis) if self.hadamard else as_float32(x, "x")
        if self.fmt == "fp32":
            return data
        if self.fmt == "bf16":
            return cast(data, "bf16", nan="zero")
        if self.scaling == "delayed":
            if delayed is None:
                raise BlackwellSimError(f"delayed: {self.fmt} with delayed scaling needs a DelayedScaling state")
            return delayed.quantize(data)
        return quantize(data, self.fmt, axis=axis, block_shape=self.block_shape,
                        scale_rule=self.scale_rule, policy=self.policy, rounding=self.rounding, rng=rng)


@dataclass(frozen=True)
class NVFP4Recipe:
    """A named recipe: one :class:`OperandTreatment` per (GEMM, operand) pair.

    Despite the name (after TE's flagship recipe) it describes any recipe; see :data:`RECIPES`.
    """

    name: str
    description: str
    treatments: dict[tuple[str, str], OperandTreatment]

    def treatment(self, gemm: str, operand: str) -> OperandTreatment:
        if gemm not in GEMM_OPERANDS or operand not in GEMM_OPERANDS[gemm]:
            pairs = ", ".join(f"{g}/{o}" for g, ops in GEMM_OPERANDS.items() for o in ops)
            raise BlackwellSimError(f"gemm/operand: unknown pair {gemm}/{operand}; known: {pairs}")
        return self.treatments[(gemm, operand)]

    def quantize_operand(self, gemm: str, operand: str, x: object, axis: int = -1, *,
                         rng: np.random.Generator | int | None = None,
                         delayed: DelayedScaling | None = None) -> QuantizedTensor | np.ndarray:
        """Apply this recipe's treatment of ``operand`` in ``gemm`` to ``x`` (K along ``axis``)."""
        return self.treatment(gemm, operand).apply(x, axis, rng=rng, delayed=delayed)

    @classmethod
    def nvfp4(cls, name: str = "nvfp4_te", *, disable_rht: bool = False,
              disable_stochastic_rounding: bool = False, disable_2d_quantization: bool = False,
              policy: str = "te") -> NVFP4Recipe:
        """TE ``NVFP4BlockScaling`` with its three switches (all techniques on by default)."""
        act = OperandTreatment("nvfp4", policy=policy)
        weight = OperandTreatment("nvfp4", None if disable_2d_quantization else (16, 16), policy=policy)
        sr = "rne" if disable_stochastic_rounding else "sr"
        grad = OperandTreatment("nvfp4", policy=policy, rounding=sr)
        rht = not disable_rht
        return cls(name, "NVFP4 (TE NVFP4BlockScaling): 1x16 activations/gradients, 16x16 weights, "
                   "RHT on wgrad operands, stochastic rounding on gradients",
                   {("fprop", "input"): act, ("fprop", "weight"): weight,
                    ("dgrad", "grad_output"): grad, ("dgrad", "weight"): weight,
                    ("wgrad", "grad_output"): OperandTreatment("nvfp4", policy=policy, rounding=sr, hadamard=rht),
                    ("wgrad", "input"): OperandTreatment("nvfp4", policy=policy, hadamard=rht)})


def _uniform(name: str, description: str, fwd: OperandTreatment, bwd: OperandTreatment) -> NVFP4Recipe:
    return NVFP4Recipe(name, description, {
        ("fprop", "input"): fwd, ("fprop", "weight"): fwd, ("dgrad", "grad_output"): bwd,
        ("dgrad", "weight"): fwd, ("wgrad", "grad_output"): bwd, ("wgrad", "input"): fwd})


RECIPES: dict[str, NVFP4Recipe] = {
    "nvfp4_te": NVFP4Recipe.nvfp4(),
    "mxfp8": _uniform("mxfp8", "MXFP8 (TE MXFP8BlockScaling): E4M3 elements, E8M0 1x32 scales (RCEIL) "
                      "for every operand", OperandTreatment("mxfp8_e4m3", scale_rule="rceil"),
                      OperandTreatment("mxfp8_e4m3", scale_rule="rceil")),
    "fp8_delayed": _uniform("fp8_delayed", "FP8 per-tensor delayed scaling (TE DelayedScaling, HYBRID: "
                            "E4M3 forward, E5M2 gradients)", OperandTreatment("fp8_e4m3", scaling="delayed"),
                            OperandTreatment("fp8_e5m2", scaling="delayed")),
    "fp8_current": _uniform("fp8_current", "FP8 per-tensor current scaling (TE Float8CurrentScaling, "
                            "HYBRID)", OperandTreatment("fp8_e4m3"), OperandTreatment("fp8_e5m2")),
    "bf16": _uniform("bf16", "No quantization: BF16 operands, fp32 accumulation",
                     OperandTreatment("bf16"), OperandTreatment("bf16")),
}


def get_recipe(name: str) -> NVFP4Recipe:
    """A named recipe from :data:`RECIPES`, or a ValueError listing the names."""
    if name not in RECIPES:
        raise BlackwellSimError(f"recipe: unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
