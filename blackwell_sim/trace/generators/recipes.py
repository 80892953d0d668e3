"""Format recipes for generated traces: which GEMMs run in NVFP4 / MXFP4 / FP8 / BF16.

A recipe names the operand format of the transformer blocks' linear layers (forward, dgrad and
wgrad GEMMs alike, as TransformerEngine's recipes do), the numerics recipe that functional
execution uses for them (a key of :data:`blackwell_sim.numerics.RECIPES`, or None), how many blocks
at each end of the model stay in BF16, and the formats of the LM head, the MoE router and
attention. Named recipes are in :data:`FORMAT_RECIPES`; a mapping with the same keys (optionally
``base: <name>``) builds a custom one.

Sources: NVIDIA's NVFP4 pretraining recipe (arXiv 2509.25149, "Pretraining Large Language Models
with NVFP4") quantizes only the linear-layer GEMMs (fprop, dgrad, wgrad) and keeps "selective
high-precision layers" (about 16% of the linear layers of its 12B model) in BF16; attention's
BMMs, the embedding and the LM head stay in higher precision. Which blocks stay in BF16 is a
parameter here; the first and the last block (``bf16_first_layers`` / ``bf16_last_layers`` = 1) is
our default, an estimate, not the paper's per-model choice.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from blackwell_sim.errors import BlackwellSimError


@dataclass(frozen=True)
class FormatRecipe:
    name: str
    linear: str = "bf16"                  #: dtype of the blocks' linear-layer GEMMs
    numerics: str | None = None           #: numerics recipe for those GEMMs (functional runs)
    bf16_first_layers: int = 0            #: blocks at the start kept in BF16
    bf16_last_layers: int = 0             #: blocks at the end kept in BF16
    lm_head: str = "bf16"                 #: LM head GEMMs
    router: str = "bf16"                  #: MoE router GEMM
    attention: str = "bf16"               #: attention kernels

    def linear_format(self, layer: int, n_layers: int) -> tuple[str, str | None]:
        """(dtype, numerics recipe) of block ``layer``'s linear layers in a model of ``n_layers``."""
        if layer < self.bf16_first_layers or layer >= n_layers - self.bf16_last_layers:
            return "bf16", "bf16" if self.numerics else None
        return self.linear, self.numerics


FORMAT_RECIPES: dict[str, FormatRecipe] = {r.name: r for r in (
    FormatRecipe("bf16", "bf16", "bf16"),
    FormatRecipe("fp8", "fp8_e4m3", "fp8_current"),
    FormatRecipe("mxfp8", "mxfp8", "mxfp8"),
    FormatRecipe("mxfp4", "mxfp4", None, bf16_first_layers=1, bf16_last_layers=1),
    FormatRecipe("nvfp4", "nvfp4", "nvfp4_te", bf16_first_layers=1, bf16_last_layers=1),
    FormatRecipe("nvfp4-all", "nvfp4", "nvfp4_te"),
)}


def _check_dtype(value: Any, key: str) -> str:
    from blackwell_sim.config.dtypes import get_dtype

    try:
        return get_dtype(value).name if isinstance(value, str) else get_dtype(str(value)).name
    except KeyError as exc:
        raise BlackwellSimError(f"recipe: key '{key}': {exc.args[0]}") from None


def get_format_recipe(recipe: str | Mapping | FormatRecipe) -> FormatRecipe:
    """A recipe by name, or built from a mapping (``base`` + overrides), strictly checked."""
    if isinstance(recipe, FormatRecipe):
        return recipe
    if isinstance(recipe, str):
        if recipe not in FORMAT_RECIPES:
            raise BlackwellSimError(f"recipe: unknown recipe {recipe!r}; known: {', '.join(FORMAT_RECIPES)} "
                                    f"(or a mapping with keys {', '.join(f.name for f in fields(FormatRecipe))})")
        return FORMAT_RECIPES[recipe]
    if not isinstance(recipe, Mapping):
        raise BlackwellSimError(f"recipe: expected a name or a mapping, got {recipe!r}")
    raw = dict(recipe)
    base = get_format_recipe(raw.pop("base", "bf16"))
    known = [f.name for f in fields(FormatRecipe)]
    changes: dict[str, Any] = {"name": raw.pop("name", "custom")}
    for key, value in raw.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known + ["base"], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known + ['base'])}"
            raise BlackwellSimError(f"recipe: unknown key '{key}'{hint}")
        if key in ("bf16_first_layers", "bf16_last_layers"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BlackwellSimError(f"recipe: key '{key}': expected an integer >= 0 (got {value!r})")
        elif key == "numerics":
            from blackwell_sim.numerics.recipes import RECIPES

            if value is not None and value not in RECIPES:
                raise BlackwellSimError(f"recipe: key 'numerics': unknown numerics recipe {value!r}; "
                                        f"known: {', '.join(RECIPES)}")
        else:
            value = _check_dtype(value, key)
        changes[key] = value
    if "linear" in changes and "numerics" not in changes:
        changes["numerics"] = None  # the base's numerics recipe belongs to the base's format
    return replace(base, **changes)
