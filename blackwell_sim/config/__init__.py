"""Typed hardware description: frozen dataclasses per unit, YAML presets, derived peaks."""

from blackwell_sim.config.dtypes import DTYPES, DType, dtype_names, get_dtype
from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.config.loader import list_presets, load_config, parse_set_option, preset_dir
from blackwell_sim.config.schema import field_help, to_plain
from blackwell_sim.config.system import FabricConfig, SwitchConfig, SystemConfig


def gpu_of(config) -> GPUConfig:
    """The GPU of a GPUConfig or SystemConfig; anything else is a one-line error."""
    from blackwell_sim.errors import BlackwellSimError

    if isinstance(config, SystemConfig):
        return config.gpu
    if not isinstance(config, GPUConfig):
        raise BlackwellSimError(f"config must be a GPUConfig or SystemConfig, got {type(config).__name__}")
    return config


__all__ = [
    "DTYPES", "DType", "FabricConfig", "GPUConfig", "SwitchConfig", "SystemConfig", "dtype_names",
    "field_help", "get_dtype", "gpu_of", "list_presets", "load_config", "parse_set_option", "preset_dir",
    "to_plain",
]
