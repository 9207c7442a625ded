"""One SMILES line for constrained decoding: atoms of the organic subset written bare (C N O S P F Cl Br I and
aromatic c n o s p), anything else in brackets, hydrogens only inside brackets — so formula-style text such as
`CCOOCCH3Cl` cannot be written — with bonds, ring closures and branches. Syntax only: RDKit still checks valence
and ring closures when the value is parsed.
"""

from __future__ import annotations

from tgdomains.grammar import ValueFormat

MAX_TOKENS = 256  # a 70-heavy-atom SMILES is ~60 tokens; the critique up to ~100

GBNF = r"""
value ::= "\n"? mol-chain "\n"?
mol-chain ::= mol-atom mol-tail*
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
