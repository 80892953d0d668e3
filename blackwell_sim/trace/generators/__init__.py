"""Workload generators: transformer training / inference traces from a small model description.

:func:`generate` returns a trace document (the format of :mod:`blackwell_sim.trace`) for one
training step (forward, backward with dgrad and wgrad GEMMs, optimizer as memory traffic) or one
inference step (prefill, or decode against a KV cache) of a model, laid out over tensor, pipeline,
data and expert parallel ranks with the collectives that layout implies. Bundled descriptions:
:func:`model_names` (Llama-3 8B and 70B, a DeepSeek-V3-like MoE). The low-precision recipe (which
GEMMs run in NVFP4 / MXFP4 / FP8 / BF16) is the ``recipe`` argument (:data:`FORMAT_RECIPES`).
"""

from blackwell_sim.trace.generators.models import MLASpec, ModelSpec, MoESpec, load_model, model_names, parameter_count
from blackwell_sim.trace.generators.parallel import MODES, Layout, generate
from blackwell_sim.trace.generators.recipes import FORMAT_RECIPES, FormatRecipe, get_format_recipe

__all__ = [
           "FORMAT_RECIPES",
           "MODES",
           "FormatRecipe",
           "Layout",
           "MLASpec",
           "MoESpec",
           "ModelSpec",
           "generate",
           "get_format_recipe",
           "load_model",
           "model_names",
           "parameter_count",
]
