"""One SMILES line for constrained decoding: atoms of the organic subset written bare (C N O S P F Cl Br I and
aromatic c n o s p), anything else in brackets, hydrogens only inside brackets — so formula-style text such as
`CCOOCCH3Cl` cannot be written — with bonds, ring closures and branches. Syntax only: RDKit still checks valence
and ring closures when the value is parsed. Bounded: at most 120 atoms, rings and branches on the main chain and 40
in a branch (a 70-heavy-atom drug-like molecule needs ~90): at temperature 0.7 Qwen2.5-Coder-1.5B looped
`c1ccccc1c2c3c4c5c6c7c8c9c1c2c3...` until the 256-token limit cut it, three replies in a row on DRD2.
"""

from __future__ import annotations

from tgdomains.grammar import ValueFormat

MAX_TOKENS = 256  # a 70-heavy-atom SMILES is ~60 tokens; the critique up to ~100

GBNF = r"""
value ::= "\n"? mol-atom mol-tail{0,119} "\n"?
mol-chain ::= mol-atom mol-tail{0,39}
mol-tail ::= mol-bond? mol-atom | mol-bond? mol-ring | mol-branch
mol-branch ::= "(" mol-bond? mol-chain ")"
mol-bond ::= [-=#:/\\]
mol-ring ::= [1-9] | "%" [1-9] [0-9]
mol-atom ::= "Cl" | "Br" | [CNOSPFI] | [cnosp] | mol-bracket
mol-bracket ::= "[" mol-element mol-chiral? mol-hcount? mol-charge? "]"
mol-element ::= "Cl" | "Br" | [CNOSPFIH] | [cnosp]
mol-chiral ::= "@" "@"?
mol-hcount ::= "H" [1-4]?
mol-charge ::= [+-] [1-3]?
"""


def value_format() -> ValueFormat:
    return ValueFormat("smiles", GBNF.strip(), max_tokens=MAX_TOKENS)
