"""Bundled example traces, installed as the package ``blackwell_sim.traces``."""
