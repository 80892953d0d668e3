"""Maps the top-level configs/ folder into the package as ``blackwell_sim.presets`` and traces/
(the bundled example traces, the default of ``blackwell-sim run``) as ``blackwell_sim.traces``.

Everything else about the build lives in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["blackwell_sim", "blackwell_sim.*"])
    + ["blackwell_sim.presets", "blackwell_sim.traces"],
    package_dir={"blackwell_sim.presets": "configs", "blackwell_sim.traces": "traces"},
    package_data={"blackwell_sim.presets": ["*.yaml", "studies/*.yaml"],
                  "blackwell_sim.traces": ["*.yaml", "*.json", "*.jsonl"],
                  "blackwell_sim.trace.generators": ["models/*.yaml"]},
)
