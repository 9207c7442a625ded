"""Plots of a molecule run: score and Vina/QED per iteration, the (Vina, QED) Pareto plot, a grid of the best."""

from __future__ import annotations

from pathlib import Path

from domains.molecules.tracking import best_molecules, pareto_front, read_records


def write_report(run_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Write trajectory.png, pareto.png and best_molecules.png into `out_dir`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    records = read_records(run_dir)
    if not records:
        raise ValueError(f"{run_dir} has no steps to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    docked = [r for r in records if r.vina is not None]
    fig, (ax_score, ax_terms) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_score.plot([r.iteration for r in records if r.score is not None],
                  [r.score for r in records if r.score is not None], "o-", label="score = −(Vina + (1 − QED))")
    invalid = [r.iteration for r in records if r.score is None]
    if invalid:
        ax_score.plot(invalid, [min((r.score for r in records if r.score is not None), default=0)] * len(invalid),
                      "rx", label="invalid / not docked")
    ax_score.set_ylabel("score (higher is better)")
    ax_score.legend(loc="best")
    ax_terms.plot([r.iteration for r in docked], [r.vina for r in docked], "s-", color="tab:blue", label="Vina")
    ax_terms.set_ylabel("Vina (kcal/mol)")
    ax_qed = ax_terms.twinx()
    ax_qed.plot([r.iteration for r in docked], [r.qed for r in docked], "^-", color="tab:green", label="QED")
    ax_qed.set_ylabel("QED")
    ax_terms.set_xlabel("iteration")
    fig.tight_layout()
    written.append(str(out / "trajectory.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    front = pareto_front(records)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter([r.vina for r in docked], [r.qed for r in docked], c=[r.iteration for r in docked], cmap="viridis",
               label="all molecules (colour: iteration)")
    ax.plot([r.vina for r in front], [r.qed for r in front], "r--o", mfc="none", label="Pareto front")
    ax.set_xlabel("Vina (kcal/mol, lower is better)")
    ax.set_ylabel("QED (higher is better)")
    ax.legend(loc="best")
    fig.tight_layout()
    written.append(str(out / "pareto.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    best = best_molecules(records)
    if best:
        from rdkit import Chem
        from rdkit.Chem import Draw

        image = Draw.MolsToGridImage(
            [Chem.MolFromSmiles(r.smiles) for r in best], molsPerRow=4, subImgSize=(250, 250),
            legends=[f"it {r.iteration}: Vina {r.vina:.1f}, QED {r.qed:.2f}" for r in best],
        )
        written.append(str(out / "best_molecules.png"))
        image.save(written[-1])
    return written
