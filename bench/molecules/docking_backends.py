"""CPU-seconds per ligand, `vina` backend vs `dockstring`, same exhaustiveness, and Spearman rank agreement.

Both backends dock the same drug-like ligands on one target through ONE worker process (workers=1), with a fresh
cache so nothing is reused. The two are interleaved ligand by ligand (which backend goes first alternates), so both
see the same load on a shared machine. CPU time is measured inside the worker: the Python process plus its child
processes (Open Babel, the Vina binary). The vina backend's one-off grid-map computation is reported separately.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

# Drug-like ligands of varied size (approved drugs and fragments), all C/N/O/S/F/Cl.
LIGANDS = {
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "caffeine": "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
    "haloperidol": "O=C(CCCN1CCC(O)(c2ccc(Cl)cc2)CC1)c1ccc(F)cc1",
    "risperidone_core": "Cc1nc2n(c(=O)c1CCN1CCC(c3noc4cc(F)ccc34)CC1)CCCC2",
    "aripiprazole": "O=C1CCc2ccc(OCCCCN3CCN(c4cccc(Cl)c4Cl)CC3)cc2N1",
    "diazepam": "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",
    "celecoxib": "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
    "metoprolol": "COCCc1ccc(OCC(O)CNC(C)C)cc1",
    "sulpiride": "CCN1CCCC1CNC(=O)c1cc(S(N)(=O)=O)ccc1OC",
    "dopamine": "NCCc1ccc(O)c(O)c1",
    "imatinib_fragment": "Cc1ccc(NC(=O)c2ccccc2)cc1Nc1nccc(-c2cccnc2)n1",
}


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="DRD2")
    parser.add_argument("--exhaustiveness", type=int, default=4)
    parser.add_argument("--out", default="bench/molecules/results.json")
    args = parser.parse_args()

    from domains.molecules import Docker, DockingSettings

    backends = ("dockstring", "vina")
    rows = {b: {"results": [], "wall_s": 0.0} for b in backends}
    with tempfile.TemporaryDirectory() as cache:
        dockers = {b: Docker(DockingSettings(backend=b, exhaustiveness=args.exhaustiveness, cache_dir=cache, workers=1))
                   for b in backends}
        for backend, docker in dockers.items():  # warm the worker (imports, and grid maps for vina), timed apart
            rows[backend]["one_off_setup_cpu_s"] = docker.dock("CCO", args.target).setup_cpu_seconds
        for i, smiles in enumerate(LIGANDS.values()):
            for backend in backends if i % 2 == 0 else backends[::-1]:
                wall = time.perf_counter()
                rows[backend]["results"].append(dockers[backend].dock(smiles, args.target).to_dict())
                rows[backend]["wall_s"] += time.perf_counter() - wall
    for docker in dockers.values():
        docker.close()  # each backend had its own warm worker process

    print(f"target {args.target}, exhaustiveness {args.exhaustiveness}, one worker, backends interleaved\n")
    print(f"{'ligand':<18} {'dockstring kcal/mol':>20} {'vina kcal/mol':>14} {'dockstring CPU s':>17} {'vina CPU s':>11}")
    for i, name in enumerate(LIGANDS):
        d, v = rows["dockstring"]["results"][i], rows["vina"]["results"][i]
        print(f"{name:<18} {d['vina']!s:>20} {v['vina']!s:>14} {d['cpu_seconds']:>17.2f} {v['cpu_seconds']:>11.2f}")
    ok = [i for i in range(len(LIGANDS)) if rows["dockstring"]["results"][i]["vina"] is not None
          and rows["vina"]["results"][i]["vina"] is not None]
    cpu = {b: sum(rows[b]["results"][i]["cpu_seconds"] for i in ok) / len(ok) for b in rows}
    maps = sum(r["setup_cpu_seconds"] for r in rows["vina"]["results"])
    summary = {
        "target": args.target, "exhaustiveness": args.exhaustiveness, "ligands_docked_by_both": len(ok),
        "cpu_s_per_ligand": cpu, "ratio_vina_over_dockstring": cpu["vina"] / cpu["dockstring"],
        "spearman": spearman([rows["dockstring"]["results"][i]["vina"] for i in ok],
                             [rows["vina"]["results"][i]["vina"] for i in ok]),
        "wall_s": {b: rows[b]["wall_s"] for b in rows},
        "vina_grid_maps_cpu_s_once_per_target_per_worker": rows["vina"]["one_off_setup_cpu_s"],
        "vina_grid_maps_cpu_s_in_timed_batch": maps,
    }
    print(json.dumps(summary, indent=2))
    with open(args.out, "w") as handle:
        json.dump({"summary": summary, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
