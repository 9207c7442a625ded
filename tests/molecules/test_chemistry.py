import pytest

from domains.molecules import (
    SmilesError,
    alerts,
    canonical_smiles,
    extract_smiles,
    property_panel,
    resolve_start,
    tanimoto,
)

BAD_SMILES = [
    ("", "empty SMILES"),
    ("   ", "empty SMILES"),
    ("C1CC(", "parse error at position 5"),
    ("CC)C", "parse error at position 3 (extra close parentheses)"),
    ("C1CC", "unclosed ring"),
    ("CN(C)(C)(C)C", "valence error"),
    ("FC(F)(F)(F)F", "valence error"),
    ("c1cccc1", "aromaticity error"),
    ("CCO.CC", "several fragments: 2"),
    ("[Na+].[Cl-]", "unsupported element Na"),
    ("C[Si](C)(C)C", "unsupported element Si"),
    ("*CC", "unsupported element * (wildcard)"),
    ("[CH3]", "radical"),
    ("C" * 71, "too large: 71 heavy atoms"),
    ("C" * 401, "too large: SMILES has 401 characters"),
    ("C C", "whitespace at position 2"),
    ("CCé", "position 3: character 'é' is not SMILES"),
]


@pytest.mark.parametrize(("smiles", "reason"), BAD_SMILES)
def test_bad_smiles_are_rejected_with_their_specific_reason(smiles, reason):
    with pytest.raises(SmilesError) as caught:
        canonical_smiles(smiles)
    assert reason in str(caught.value)


def test_canonical_smiles_is_the_same_for_two_spellings():
    assert canonical_smiles("OC1=CC=CC=C1") == canonical_smiles("c1ccc(O)cc1") == "Oc1ccccc1"


def test_named_starts_and_any_smiles():
    assert resolve_start("Benzene") == "c1ccccc1"
    assert resolve_start("acetamide") == "CC(N)=O"
    assert resolve_start("pentane") == "CCCCC"
    assert resolve_start("OCC") == "CCO"
    with pytest.raises(SmilesError):
        resolve_start("benzine")


@pytest.mark.parametrize(("reply", "smiles"), [
    ("SMILES: CCO", "CCO"),
    ("**SMILES:** `CC(=O)N`", "CC(=O)N"),
    ("Improved SMILES = c1ccccc1O because phenol binds", "c1ccccc1O"),
    ("Here it is:\n```smiles\nCC(=O)Nc1ccc(O)cc1\n```\nDone.", "CC(=O)Nc1ccc(O)cc1"),
    ("```\nSMILES: CCN\n```", "CCN"),
    ("  c1ccncc1  ", "c1ccncc1"),
    ('"CCO".', "CCO"),
    ("<IMPROVED_VARIABLE>\nSMILES: CCCl\n</IMPROVED_VARIABLE>", "CCCl"),
])
def test_extract_smiles_from_reply_formats(reply, smiles):
    assert extract_smiles(reply) == smiles


@pytest.mark.parametrize(("reply", "reason"), [
    ("", "empty SMILES"),
    ("I would add a hydroxyl group to the ring", "no SMILES found"),
    ("```smiles\n\n```", "fenced block is empty"),
])
def test_extract_smiles_says_why_nothing_was_found(reply, reason):
    with pytest.raises(SmilesError, match=reason):
        extract_smiles(reply)


def test_property_panel_of_paracetamol():
    panel = property_panel("CC(=O)Nc1ccc(O)cc1")
    assert panel["mw"] == pytest.approx(151.16, abs=0.01)
    assert (panel["hbd"], panel["hba"], panel["rotatable_bonds"]) == (2, 2, 1)
    assert panel["lipinski_violations"] == 0
    assert 0.5 < panel["qed"] < 0.7
    assert 1 < panel["sa"] < 2.5
    assert panel["pains_alerts"] == 0


def test_alerts_name_the_matching_substructures():
    assert "Michael_acceptor_1" in alerts("O=C(C=Cc1ccccc1)c1ccccc1")["brenk"]
    assert alerts("O=C(C=Cc1ccccc1)c1ccccc1")["pains"] == []
    # A PAINS classic: an ene-rhodanine.
    assert alerts("S=C1SC(=Cc2ccccc2)C(=O)N1")["pains"]


def test_lipinski_violations_count_each_rule():
    # A long greasy chain: logP above 5 (one violation), MW 450, no donors or acceptors.
    assert property_panel("C" * 32)["lipinski_violations"] == 1


def test_tanimoto_is_one_for_the_same_molecule_and_lower_for_another():
    assert tanimoto("c1ccccc1O", "Oc1ccccc1") == 1.0
    assert tanimoto("c1ccccc1O", "CCN") < 0.2
