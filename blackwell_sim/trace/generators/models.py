"""Model descriptions for the workload generators: a frozen dataclass, strictly validated.

A description is the handful of numbers a transformer's op list follows from (hidden size, heads,
KV heads, head dim, FFN size, layers, vocabulary; optionally MoE experts and MLA low-rank
attention). Bundled descriptions live in ``models/<name>.yaml`` (each number cites its model card or
paper); :func:`load_model` takes a bundled name, a YAML path or a mapping. Unknown keys, missing
keys and out-of-range values raise :class:`~blackwell_sim.errors.BlackwellSimError` naming the
source, the key and the value.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from blackwell_sim.errors import BlackwellSimError

MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class MoESpec:
    """Mixture-of-experts FFN: ``experts`` routed experts of width ``expert_ffn``, ``top_k`` per
    token, ``shared_experts`` always-on experts of the same width; the first
    ``first_dense_layers`` layers keep the dense FFN of width ``ModelSpec.ffn``."""

    experts: int
    top_k: int
    expert_ffn: int
    shared_experts: int = 0
    first_dense_layers: int = 0


@dataclass(frozen=True)
class MLASpec:
    """Multi-head latent attention (DeepSeek-V2/V3): queries and keys/values pass through low-rank
    projections (``q_lora_rank``, ``kv_lora_rank``); each head has ``qk_nope_head_dim`` +
    ``qk_rope_head_dim`` query/key dims and ``v_head_dim`` value dims."""

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer. ``gated_mlp`` (SwiGLU) means the FFN has gate, up and down
    projections (3 matrices) instead of 2; ``head_dim`` defaults to hidden / heads."""

    name: str
    hidden: int
    heads: int
    layers: int
    vocab: int
    ffn: int
    kv_heads: int | None = None
    head_dim: int | None = None
    gated_mlp: bool = True
    tied_embeddings: bool = False
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    description: str = ""

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden // self.heads

    def is_moe_layer(self, layer: int) -> bool:
        return self.moe is not None and layer >= self.moe.first_dense_layers


_INT_FIELDS = {"hidden", "heads", "layers", "vocab", "ffn", "kv_heads", "head_dim", "experts", "top_k",
               "expert_ffn", "shared_experts", "first_dense_layers", "q_lora_rank", "kv_lora_rank",
               "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"}
_MAY_BE_ZERO = {"shared_experts", "first_dense_layers"}
_SKIP_KEYS = {"sources"}  # documentation only


def _fail(source: str, key: str, value: Any, why: str) -> BlackwellSimError:
    return BlackwellSimError(f"{source}: key '{key}': {why} (got {value!r})")


def _build(cls, raw: Any, source: str, prefix: str = ""):
    if not isinstance(raw, Mapping):
        raise _fail(source, prefix.rstrip(".") or "<model>", raw, "expected a mapping")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SKIP_KEYS:
            continue
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
            raise _fail(source, prefix + str(key), value, "unknown key" + hint)
        if key == "moe" and value is not None:
            value = _build(MoESpec, value, source, prefix + "moe.")
        elif key == "mla" and value is not None:
            value = _build(MLASpec, value, source, prefix + "mla.")
        elif key in _INT_FIELDS:
            if value is None and known[key].default is None:
                pass
            elif isinstance(value, bool) or not isinstance(value, int):
                raise _fail(source, prefix + key, value, "expected an integer")
            elif value < (0 if key in _MAY_BE_ZERO else 1):
                raise _fail(source, prefix + key, value, "must be " + (">= 0" if key in _MAY_BE_ZERO else "> 0"))
        elif key in ("gated_mlp", "tied_embeddings"):
            if not isinstance(value, bool):
                raise _fail(source, prefix + key, value, "expected true or false")
        elif key in ("name", "description") and not isinstance(value, str):
            raise _fail(source, prefix + key, value, "expected a string")
        kwargs[key] = value
    missing = [f.name for f in fields(cls) if f.name not in kwargs
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise _fail(source, prefix + missing[0], None, "missing required key")
    return cls(**kwargs)


def _check(spec: ModelSpec, source: str) -> ModelSpec:
    if spec.head_dim is None and spec.hidden % spec.heads and spec.mla is None:
        raise _fail(source, "heads", spec.heads, f"must divide hidden ({spec.hidden}) unless head_dim is given")
    if spec.heads % spec.n_kv_heads:
        raise _fail(source, "kv_heads", spec.kv_heads, f"must divide heads ({spec.heads})")
    if spec.moe is not None:
        moe = spec.moe
        if moe.top_k > moe.experts:
            raise _fail(source, "moe.top_k", moe.top_k, f"must be <= moe.experts ({moe.experts})")
        if moe.first_dense_layers > spec.layers:
            raise _fail(source, "moe.first_dense_layers", moe.first_dense_layers,
                        f"must be <= layers ({spec.layers})")
    return spec


def model_names() -> list[str]:
    """The bundled model descriptions."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model(model: str | os.PathLike | Mapping | ModelSpec) -> ModelSpec:
    """A :class:`ModelSpec` from a bundled name (``llama3-8b``), a YAML path or a mapping."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, Mapping):
        raw, source = dict(model), "<model>"
        raw.setdefault("name", "custom")
    else:
        path = Path(model)
        if not path.suffix and (MODELS_DIR / f"{model}.yaml").is_file():
            path = MODELS_DIR / f"{model}.yaml"
        elif not path.is_file():
            raise BlackwellSimError(f"model: unknown model {str(model)!r}; bundled: {', '.join(model_names())} "
                                    f"(or give a YAML file)")
        source = str(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BlackwellSimError(f"{source}: cannot read model description: "
                                    f"{str(exc).splitlines()[0]}") from None
        if isinstance(raw, Mapping):
            raw = dict(raw)
            raw.setdefault("name", path.stem)
    return _check(_build(ModelSpec, raw, source), source)


def parameter_count(spec: ModelSpec) -> int:
    """Total parameters (embeddings, attention, FFN/experts, norms, LM head)."""
    from blackwell_sim.trace.generators.transformer import layer_linears

    total = spec.vocab * spec.hidden * (1 if spec.tied_embeddings else 2) + spec.hidden
    for layer in range(spec.layers):
        total += sum(lin.in_features * lin.out_features * lin.count
                     for lin in layer_linears(spec, layer, tp=1, ep=1, local_experts_only=False))
        total += 2 * spec.hidden
    return int(total)


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for positive integers."""
    return -(-a // b)
