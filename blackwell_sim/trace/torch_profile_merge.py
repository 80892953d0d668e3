"""Several ranks' imported profiles as one multi-GPU op list (see :mod:`.torch_profile`).

Each file's ops keep their rank and get an ``r<rank>.`` name prefix; the k-th collective of a
(kind, process group) on every file that takes part becomes one collective op. Its measured time is
the least of the ranks' (the others include waiting for the slowest rank), its deps are every
member's, and the ops that waited for it on each rank wait for the merged op. Ops are emitted in
an order where every dependency comes first; files whose collectives do not line up (different
steps, different groups) raise one clear error.
"""

from __future__ import annotations

from collections import defaultdict

from blackwell_sim.errors import BlackwellSimError


def merge_ranks(files: list[dict]) -> list[dict]:
    """One op list over several ranks: names prefixed, the k-th collective of each (kind, group)
    merged across the files that take part, in an order where every dep comes first."""
    present = {f["rank"] for f in files}
    queues = {f["rank"]: f["ops"] for f in files}
    sources = {f["rank"]: f["source"] for f in files}
    seen: dict[tuple[int, tuple], int] = defaultdict(int)
    keyed: dict[int, list] = {}
    for r, ops in queues.items():  # occurrence index of each collective per (kind, group)
        keys = []
        for op in ops:
            if "group" in op:
                key = (op["op"], tuple(op["group"]))
                keys.append(key + (seen[(r, key)],))
                seen[(r, key)] += 1
            else:
                keys.append(None)
        keyed[r] = keys
    out: list[dict] = []
    idx = dict.fromkeys(queues, 0)
    rename: dict[int, dict[str, str]] = {r: {} for r in queues}
    arrived: dict[tuple, dict[int, dict]] = defaultdict(dict)
    groups: dict[tuple, int] = {}
    done: set[tuple] = set()
    while any(idx[r] < len(queues[r]) for r in queues):
        progress = False
        for r, ops in queues.items():
            while idx[r] < len(ops):
                op, key = ops[idx[r]], keyed[r][idx[r]]
                if key is None:
                    new = {**op, "name": f"r{r}.{op['name']}"}
                    if "deps" in op:
                        new["deps"] = [rename[r].get(d, f"r{r}.{d}") for d in op["deps"]]
                    out.append(new)
                elif key not in done:
                    arrived[key][r] = op
                    members = [m for m in key[1] if m in present]
                    if len(arrived[key]) < len(members):
                        break
                    parts = [arrived[key][m] for m in members]
                    if len({p["bytes"] for p in parts}) > 1:
                        sizes = ", ".join(f"rank {m}: {p['bytes']}" for m, p in zip(members, parts))
                        raise BlackwellSimError(f"{sources[members[0]]}: {key[0]} #{key[2]} of group "
                                                f"{list(key[1])}: bytes differ across files ({sizes})")
                    gid = groups.setdefault(key[1], len(groups))
                    merged = {k: v for k, v in parts[0].items() if k not in ("deps", "measured_s")}
                    merged["name"] = f"{key[0]}_{key[2]}.g{gid}"
                    deps = [f"r{m}.{d}" for m, p in zip(members, parts) for d in p.get("deps", ())]
                    if deps:
                        merged["deps"] = deps
                    times = [p["measured_s"] for p in parts if "measured_s" in p]
                    if times:
                        merged["measured_s"] = min(times)
                    out.append(merged)
                    done.add(key)
                    for m, p in zip(members, parts):
                        rename[m][p["name"]] = merged["name"]
                idx[r] += 1  # (a collective already merged when its last member arrived is skipped)
                progress = True
        if not progress:
            waits = "; ".join(f"rank {r} at {queues[r][idx[r]]['name']}" for r in queues if idx[r] < len(queues[r]))
            raise BlackwellSimError(f"{', '.join(sources.values())}: the files' collectives do not match "
                                    f"(one step per file, same process groups?): {waits}")
    return out
