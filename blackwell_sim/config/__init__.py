"""Typed hardware description: frozen dataclasses per unit, YAML presets, derived peaks."""

from blackwell_sim.config.dtypes import DTYPES, DType, dtype_names, get_dtype
from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.config.loader import list_presets, load_config, parse_set_option, preset_dir
from blackwell_sim.config.schema import field_help, to_plain
from blackwell_sim.config.system import FabricConfig, SwitchConfig, SystemConfig

__all__ = [
    "DTYPES", "DType", "FabricConfig", "GPUConfig", "SwitchConfig", "SystemConfig", "dtype_names",
    "field_help", "get_dtype", "list_presets", "load_config", "parse_set_option", "preset_dir",
    "to_plain",
]
