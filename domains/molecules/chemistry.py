"""SMILES in, canonical SMILES or a specific rejection out; the RDKit property panel of a molecule.

Every rejection names what is wrong (parse error position, valence, empty, several fragments, unsupported element,
too large), because the reason goes verbatim into the loss text and the repair prompt.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from tgdomains.parsing import fenced_blocks, tagged_blocks

# The paper's starting molecules, by name.
NAMED_STARTS: dict[str, str] = {
    "acetamide": "CC(N)=O",
    "pentane": "CCCCC",
    "benzene": "c1ccccc1",
}


@dataclass(frozen=True)
class Lead:
    """A known ligand to optimize: lead optimization starts from it and must stay similar to it."""

    name: str
    smiles: str
    target: str  # the DOCKSTRING target of its family it is shipped for
    source: str  # where it comes from (what it is known for)


# Leads for lead optimization: approved drugs and known ligands of the target's family (structures as in PubChem;
# activities as in ChEMBL / DrugBank): real binders of mid size (MW 267-376) whose own docking scores (-8.9 to -9.7
# kcal/mol, domains/molecules/README.md) leave room to improve.
LEADS: dict[str, Lead] = {lead.name: lead for lead in (
    Lead("haloperidol", "O=C(CCCN1CCC(O)(c2ccc(Cl)cc2)CC1)c1ccc(F)cc1", "DRD2",
         "approved antipsychotic, D2 receptor antagonist (DrugBank DB00502)"),
    Lead("apomorphine", "CN1CCc2cccc3c2[C@H]1Cc1ccc(O)c(O)c1-3", "DRD2",
         "approved anti-Parkinson drug, D2 receptor agonist (DrugBank DB00714)"),
    Lead("estradiol", "C[C@]12CC[C@@H]3c4ccc(O)cc4CC[C@H]3[C@@H]1CC[C@@H]2O", "ESR2",
         "the endogenous estrogen, approved as a drug; binds ERα and ERβ (DrugBank DB00783)"),
    Lead("genistein", "O=c1c(-c2ccc(O)cc2)coc2cc(O)cc(O)c12", "ESR2",
         "soy isoflavone, an ERβ-preferring ligand (ChEMBL CHEMBL44)"),
)}
# Lead optimization's default similarity floor (Tanimoto, Morgan r=2): as in the similarity-constrained
# benchmarks (e.g. the 0.4 of constrained penalized-logP optimization)
LEAD_MIN_SIMILARITY = 0.4

# Elements AutoDock Vina's scoring function and Open Babel's PDBQT typing handle for small drug-like ligands.
SUPPORTED_ELEMENTS = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
MAX_HEAVY_ATOMS = 70
# Longer strings are refused before RDKit sees them: no drug-like molecule needs this many characters.
MAX_SMILES_CHARS = 400


class SmilesError(ValueError):
    """A string that is not one dockable molecule; the message says why."""


def canonical_smiles(smiles: str, *, max_heavy_atoms: int = MAX_HEAVY_ATOMS) -> str:
    """The canonical SMILES of one dockable molecule, or SmilesError naming what is wrong."""
    mol = checked_mol(smiles, max_heavy_atoms=max_heavy_atoms)
    from rdkit import Chem

    return Chem.MolToSmiles(mol)


def checked_mol(smiles: str, *, max_heavy_atoms: int = MAX_HEAVY_ATOMS) -> Any:
    """A sanitized RDKit molecule without explicit hydrogens, or SmilesError naming what is wrong."""
    from rdkit import Chem, rdBase

    if not isinstance(smiles, str):
        raise SmilesError(f"SMILES must be text, got {type(smiles).__name__}")
    text = smiles.strip()
    if not text:
        raise SmilesError("empty SMILES: no molecule given")
    if len(text) > MAX_SMILES_CHARS:
        raise SmilesError(f"too large: SMILES has {len(text)} characters (limit {MAX_SMILES_CHARS})")
    if not text.isascii() or not text.isprintable():
        position, char = next((i, ch) for i, ch in enumerate(text) if not (ch.isascii() and ch.isprintable()))
        raise SmilesError(f"SMILES parse error at position {position + 1}: character {char!r} is not SMILES "
                          "(SMILES is printable ASCII)")
    if any(ch.isspace() for ch in text):
        raise SmilesError(f"SMILES contains whitespace at position {_first_space(text) + 1}: {text!r}")

    raw, log = _parse_unsanitized(text)
    if raw is None:
        raise SmilesError(_syntax_reason(text, log))

    elements = sorted({atom.GetSymbol() for atom in raw.GetAtoms()} - SUPPORTED_ELEMENTS)
    if elements:
        shown = ", ".join("* (wildcard)" if e == "*" else e for e in elements)
        raise SmilesError(
            f"unsupported element {shown}: docking handles only {', '.join(sorted(SUPPORTED_ELEMENTS))}"
        )

    with rdBase.BlockLogs():
        problems = Chem.DetectChemistryProblems(raw)
    if problems:
        raise SmilesError(_chemistry_reason(problems[0]))

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
    if mol is None:  # sanitization failed for a reason DetectChemistryProblems did not report
        raise SmilesError(f"RDKit cannot sanitize {text!r}")

    fragments = Chem.GetMolFrags(mol, asMols=False)
    if len(fragments) > 1:
        raise SmilesError(
            f"several fragments: {len(fragments)} disconnected parts ('.' in the SMILES); give one connected molecule"
        )
    if mol.GetNumAtoms() == 0:
        raise SmilesError("empty SMILES: no heavy atoms")
    if mol.GetNumAtoms() > max_heavy_atoms:
        raise SmilesError(f"too large: {mol.GetNumAtoms()} heavy atoms (limit {max_heavy_atoms})")
    radicals = sum(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms())
    if radicals:
        raise SmilesError(f"radical: {radicals} unpaired electron(s); docking needs a closed-shell molecule")
    return mol


def _parse_unsanitized(text: str) -> tuple[Any, str]:
    """Parse without sanitizing, capturing RDKit's error log (it holds the error position)."""
    from rdkit import Chem, rdBase

    capture_type = getattr(rdBase, "CaptureErrorLog", None)
    if capture_type is None:  # older RDKit: no capture, only a generic reason
        with rdBase.BlockLogs():
            return Chem.MolFromSmiles(text, sanitize=False), ""
    with capture_type() as capture:
        mol = Chem.MolFromSmiles(text, sanitize=False)
    return mol, capture.messages


def _syntax_reason(text: str, log: str) -> str:
    kind = re.search(r"SMILES Parse Error: (.+?) (?:while parsing|for input)", log)
    position = re.search(r"around position (\d+)", log)
    what = kind.group(1) if kind else "syntax error"
    if position:
        return f"SMILES parse error at position {position.group(1)} ({what}) in {text!r}"
    return f"SMILES parse error ({what}) in {text!r}"


def _chemistry_reason(problem: Any) -> str:
    kind = problem.GetType()
    message = problem.Message().strip()
    if kind == "AtomValenceException":
        return f"valence error: {message}"
    if kind == "KekulizeException":
        return f"aromaticity error: {message} (an aromatic ring that has no valid Kekulé form)"
    if kind == "AtomKekulizeException":
        return f"aromaticity error: {message} (lowercase aromatic atoms belong in rings only)"
    return f"{kind}: {message}"


def _first_space(text: str) -> int:
    return next(i for i, ch in enumerate(text) if ch.isspace())


def resolve_start(name_or_smiles: str) -> str:
    """A paper start (acetamide, pentane, benzene) or a lead (`LEADS`) by name, or any SMILES, canonicalised."""
    key = name_or_smiles.strip().lower()
    lead = LEADS.get(key)
    return canonical_smiles(lead.smiles if lead else NAMED_STARTS.get(key, name_or_smiles))


def property_panel(smiles: str) -> dict[str, float]:
    """Drug-likeness numbers of one molecule, plainly named (QED, SA score, Lipinski, alerts ...)."""
    mol = checked_mol(smiles)
    return _panel(mol)


def alerts(smiles: str) -> dict[str, list[str]]:
    """Names of the PAINS and Brenk substructure alerts that match."""
    mol = checked_mol(smiles)
    return {"pains": _alert_names(mol, "PAINS"), "brenk": _alert_names(mol, "BRENK")}


def _panel(mol: Any) -> dict[str, float]:
    from rdkit.Chem import QED, Crippen, Descriptors, Lipinski, rdMolDescriptors

    mw = Descriptors.MolWt(mol)
    logp = Crippen.MolLogP(mol)
    hbd = Lipinski.NumHDonors(mol)
    hba = Lipinski.NumHAcceptors(mol)
    return {
        "qed": QED.qed(mol),
        "sa": _sa_score(mol),
        "logp": logp,
        "mw": mw,
        "tpsa": rdMolDescriptors.CalcTPSA(mol),
        "hbd": float(hbd),
        "hba": float(hba),
        "rotatable_bonds": float(rdMolDescriptors.CalcNumRotatableBonds(mol)),
        "heavy_atoms": float(mol.GetNumAtoms()),
        "lipinski_violations": float((mw > 500) + (logp > 5) + (hbd > 5) + (hba > 10)),
        "pains_alerts": float(len(_alert_names(mol, "PAINS"))),
        "brenk_alerts": float(len(_alert_names(mol, "BRENK"))),
    }


def _sa_score(mol: Any) -> float:
    from rdkit.Contrib.SA_Score import sascorer

    return float(sascorer.calculateScore(mol))


@functools.cache
def _filter_catalog(name: str) -> Any:
    from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

    params = FilterCatalogParams()
    params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, name))
    return FilterCatalog(params)


def _alert_names(mol: Any, catalog: str) -> list[str]:
    return sorted({entry.GetDescription() for entry in _filter_catalog(catalog).GetMatches(mol)})


def tanimoto(smiles_a: str, smiles_b: str) -> float:
    """Tanimoto similarity of Morgan fingerprints (radius 2, 2048 bits)."""
    from rdkit import DataStructs

    return float(DataStructs.TanimotoSimilarity(_fingerprint(smiles_a), _fingerprint(smiles_b)))


@functools.lru_cache(maxsize=4096)
def _fingerprint(smiles: str) -> Any:
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048).GetFingerprint(Chem.MolFromSmiles(smiles))


_LABEL = re.compile(r"^\s*(?:[-*]\s*)?(?:\*\*)?(?:final\s+|improved\s+|new\s+)?smiles\s*(?:\*\*)?\s*[:=]\s*(?:\*\*)?(.+)$",
                    re.IGNORECASE | re.MULTILINE)
# Quotes, backticks and sentence punctuation an LLM wraps around a SMILES; none can start or end a valid SMILES.
_WRAPPING = "`'\",;:"


def extract_smiles(reply: str) -> str:
    """The one SMILES string in an LLM reply: "SMILES: CCO", a fenced block, tags, or the bare string.

    Raises SmilesError when no single candidate string can be found; does not check chemistry.
    """
    if not isinstance(reply, str):
        raise SmilesError(f"reply must be text, got {type(reply).__name__}")
    text = reply
    tagged = tagged_blocks(text)
    if tagged:
        text = tagged[-1]
    label = _LABEL.search(text)
    if label:
        return _strip_wrapping(label.group(1).split()[0] if label.group(1).split() else "")
    fences = fenced_blocks(text)
    if fences:
        lines = [line.strip() for line in fences[0][1].splitlines() if line.strip()]
        if not lines:
            raise SmilesError("empty SMILES: the fenced block is empty")
        label = _LABEL.search("\n".join(lines))
        return _strip_wrapping(label.group(1).split()[0] if label else lines[0].split()[0])
    words = text.split()
    if not words:
        raise SmilesError("empty SMILES: the reply is empty")
    if len(words) > 1:
        raise SmilesError(
            f"no SMILES found: the reply has {len(words)} words; give one SMILES alone, "
            "as a line 'SMILES: <smiles>' or in a fenced block"
        )
    return _strip_wrapping(words[0])


def _strip_wrapping(word: str) -> str:
    previous = None
    while word != previous:
        previous = word
        word = word.strip().strip(_WRAPPING)
        if word.startswith("**") and word.endswith("**") and len(word) > 4:  # markdown bold
            word = word[2:-2]
        # A sentence-ending period is never part of a SMILES ('.' separates fragments, so it cannot end one).
        if word.endswith("."):
            word = word[:-1]
    return word
