""">= 10,000 generated SMILES strings and replies, each a canonical SMILES or a clear error; never a crash.

Parsing and validation only: an evaluation of an invalid string must not dock, so no docking happens here at all.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.molecules import (
    Docker,
    DockingSettings,
    MoleculeEvaluator,
    MoleculesDomain,
    MoleculeTask,
    canonical_smiles,
)
from domains.molecules.chemistry import SmilesError
from tgdomains.domain import ParseError

SMILES_ALPHABET = list("CNOSPFIcnospB()[]=#123456789%@+-./\\*HXeaLlir:~") + ["Cl", "Br", "[nH]", "[O-]", "[N+]"]
REPLY_WRAPPERS = ["{}", "SMILES: {}", "```smiles\n{}\n```", "**SMILES:** `{}`", "The new molecule is {}.",
                  "<IMPROVED_VARIABLE>{}</IMPROVED_VARIABLE>", "```\n{}\n```"]
seen = {"smiles": 0, "replies": 0}
FUZZ = settings(max_examples=5000, deadline=None, database=None, suppress_health_check=list(HealthCheck))

smiles_like = st.lists(st.sampled_from(SMILES_ALPHABET), max_size=30).map("".join)
any_text = st.text(max_size=60)


@FUZZ
@given(st.one_of(smiles_like, smiles_like, any_text))
def test_generated_smiles_give_a_canonical_smiles_or_a_reason_and_never_dock(text):
    seen["smiles"] += 1
    try:
        canonical = canonical_smiles(text)
    except SmilesError as error:
        assert str(error).strip()
        # The evaluator rejects it with the same reason, without docking (no worker is ever asked).
        docker = Docker(DockingSettings(cache_dir="/nonexistent-never-written"))
        evaluator = MoleculeEvaluator(MoleculeTask(docking=docker.settings), docker=docker)
        evaluation = evaluator.evaluate(text)
        assert not evaluation.valid and str(error) in evaluation.text
        assert docker.docked == 0 and docker.cache_hits == 0
    else:
        assert canonical_smiles(canonical) == canonical  # canonical form is stable


@FUZZ
@given(st.sampled_from(REPLY_WRAPPERS), st.one_of(smiles_like, any_text))
def test_generated_llm_replies_parse_or_raise_parse_error(wrapper, text):
    seen["replies"] += 1
    domain = MoleculesDomain()
    try:
        value = domain.parse(wrapper.format(text), MoleculeTask())
    except ParseError as error:
        assert str(error).strip()
    else:
        assert canonical_smiles(value) == value


def test_fuzzing_covered_at_least_ten_thousand_strings():
    # Runs after the two fuzz tests in file order; guards against someone lowering max_examples.
    assert seen["smiles"] + seen["replies"] >= 10_000, seen
