"""``blackwell-sim configs [show NAME]``: the presets with their derived peaks."""

from __future__ import annotations

import argparse

import yaml

from blackwell_sim.cli.common import add_common, config_of, overrides_of
from blackwell_sim.config import GPUConfig, SystemConfig, list_presets, load_config
from blackwell_sim.errors import ConfigError

PEAK_FORMATS = ("tf32", "bf16", "fp8", "nvfp4")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("configs", help="list hardware presets and their peaks",
                            description="List the bundled presets (GPUs and systems) with derived "
                                        "peaks, or show one in full.")
    parser.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    parser.add_argument("name", nargs="?", help="preset name or YAML file (for 'show')")
    add_common(parser, config=False)
    parser.set_defaults(handler=run)


def _peaks(gpu: GPUConfig) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for fmt in PEAK_FORMATS:
        try:
            out[fmt] = round(gpu.peak_tflops(fmt), 1)
        except ConfigError:
            out[fmt] = None
    return out


def summarize(name: str, cfg: GPUConfig | SystemConfig) -> dict:
    gpu = cfg.gpu if isinstance(cfg, SystemConfig) else cfg
    row = {
        "name": name,
        "kind": "system" if isinstance(cfg, SystemConfig) else "gpu",
        "description": cfg.name,
        "gpus": cfg.gpu_count if isinstance(cfg, SystemConfig) else 1,
        "sms": gpu.sm.count,
        "clock_mhz": gpu.sm.clock_mhz,
        "peak_tflops_per_gpu": _peaks(gpu),
        "hbm_gbps": gpu.hbm.bandwidth_gbps,
        "l2_bytes": gpu.l2.size_bytes,
        "nvlink_gbps_per_direction": gpu.nvlink.bandwidth_gbps,
    }
    if isinstance(cfg, SystemConfig):
        row["fabric_tbps_bidirectional"] = round(cfg.fabric_bandwidth_gbps / 1000, 1)
        row["switches"] = cfg.fabric.switches
        row["nvls"] = bool(cfg.fabric.switch is not None and cfg.fabric.switch.nvls)
    return row


def _table(rows: list[dict]) -> str:
    head = f"{'preset':<14} {'kind':<6} {'GPUs':>4} {'SMs':>4} {'MHz':>5} " + " ".join(
        f"{f.upper() + ' TF':>9}" for f in PEAK_FORMATS) + f" {'HBM TB/s':>8} {'fabric TB/s':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        peaks = " ".join(f"{'-' if v is None else f'{v:.0f}':>9}" for v in r["peak_tflops_per_gpu"].values())
        fabric = r.get("fabric_tbps_bidirectional")
        lines.append(f"{r['name']:<14} {r['kind']:<6} {r['gpus']:>4} {r['sms']:>4} {r['clock_mhz']:>5.0f} "
                     f"{peaks} {r['hbm_gbps'] / 1000:>8.2f} {'' if fabric is None else f'{fabric:.1f}':>11}")
    lines.append("Peaks are dense tensor TFLOPS per GPU at sm.clock_mhz; fabric counts both directions.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    if args.action == "show":
        if not args.name:
            raise ConfigError("'configs show' needs a preset name or YAML file", source="configs show")
        cfg = config_of(args, args.name)
        data = {"preset": args.name, **summarize(args.name, cfg), "config": cfg.to_dict(),
                "peak_bandwidth_gbps": cfg.peak_bandwidth()}
        text = yaml.safe_dump({"summary": summarize(args.name, cfg), "config": cfg.to_dict()},
                              sort_keys=False)
        return {"json": data, "text": text}
    overrides = overrides_of(args)
    rows = [summarize(name, load_config(name, overrides=overrides)) for name in list_presets()]
    return {"json": {"presets": rows}, "text": _table(rows)}
