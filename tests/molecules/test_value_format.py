"""The SMILES value grammar: the SMILES alphabet, bracket atoms outside the organic subset, no bare H counts."""

import pytest
from gbnf import Grammar, llama_cpp_reads
from hypothesis import HealthCheck, given, settings

from domains.molecules.chemistry import extract_smiles
from domains.molecules.value_format import value_format
from tgdomains.grammar import reply_format
from tgdomains.optimizer import extract_tagged

VALUES = Grammar(value_format().gbnf)
REPLY = Grammar(reply_format(value_format()).grammar)


@pytest.mark.parametrize("smiles", ["c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C[C@@H](N)C(=O)O", "[NH4+]", "ClC(Br)I",
                                    "O=C1CC[C@H](N1)C(=O)O", "C%10CCCCC%10", "F/C=C/F", "c1ccc2[nH]ccc2c1"])
def test_real_smiles_are_admitted(smiles):
    assert VALUES.matches(smiles, "value")


@pytest.mark.parametrize("text", ["CCOOCCH3Cl", "CH4", "C C", "benzene", "C6H6", "[Xe]", "Na", "", "(C)C",
                                  "C1CC\nC1"])
def test_formula_style_words_and_other_elements_are_rejected(text):
    assert not VALUES.matches(text, "value")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REPLY.strings(alphabet="a .", max_repeat=4))
def test_every_reply_the_grammar_admits_yields_one_smiles_without_bare_hydrogens(reply):
    value = extract_tagged(reply)
    smiles = extract_smiles(value)
    assert smiles == value.strip() and " " not in smiles
    outside_brackets = "".join(part.split("]")[-1] for part in smiles.split("["))
    assert "H" not in outside_brackets


def test_llama_cpp_reads_the_smiles_grammar():
    assert llama_cpp_reads(reply_format(value_format()).grammar)


def test_a_runaway_repetition_is_not_admitted_but_a_large_drug_like_molecule_is():
    # the loop Qwen2.5-Coder-1.5B fell into at temperature 0.7 (cut at the token limit three times in a row)
    assert not VALUES.matches("c1ccccc1" + "c2c3c4c5c6c7c8c9c1" * 20, "value")
    # a 70-heavy-atom molecule fits: every atom, ring digit and branch of its main chain counts once
    large = "CC(C)(C)" + "c1ccc(cc1)C(=O)N" * 5 + "C" * 20
    assert VALUES.matches(large, "value")
    assert not VALUES.matches("C" + "(" + "C" * 45 + ")", "value")  # a branch holds at most 40
