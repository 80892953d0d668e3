"""YAML hardware presets, installed as the package ``blackwell_sim.presets``."""
