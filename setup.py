"""Maps the top-level configs/ folder into the package as ``blackwell_sim.presets``.

Everything else about the build lives in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["blackwell_sim", "blackwell_sim.*"]) + ["blackwell_sim.presets"],
    package_dir={"blackwell_sim.presets": "configs"},
    package_data={"blackwell_sim.presets": ["*.yaml", "studies/*.yaml"]},
)
