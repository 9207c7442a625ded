"""The plan hyperparameters' format for constrained decoding: JSON with exactly the case's structures, in order,
each {"weight": w, "dose_Gy": d} with w and d inside their bounds (targets keep a weight of at least 1, so at least
one target is always on). A grammar for llama.cpp and the same bounds as a JSON Schema for endpoints that take one.
"""

from __future__ import annotations

import json

from domains.radiotherapy.cases import Case
from domains.radiotherapy.hyperparameters import FIELDS, MAX_WEIGHT, max_dose_level
from tgdomains.grammar import ValueFormat, literal, number_upto

MAX_TOKENS = 512  # a five-structure plan is ~120 tokens; the critique up to ~100


def value_format(case: Case) -> ValueFormat:
    ws = "rt-ws"
    entries = []
    for s in case.structures:
        weight = "rt-target-weight" if s in case.targets else "rt-weight"
        entries.append(f'{literal(json.dumps(s))} {ws} ":" {ws} "{{" {ws} {literal(json.dumps(FIELDS[0]))} {ws} ":" '
                       f'{ws} {weight} {ws} "," {ws} {literal(json.dumps(FIELDS[1]))} {ws} ":" {ws} rt-dose {ws} "}}"')
    body = f' {ws} "," {ws} '.join(entries)
    gbnf = "\n".join([
        f'value ::= "\\n"? "{{" {ws} {body} {ws} "}}" "\\n"?',
        f"{ws} ::= [ \\t\\n]{{0,6}}",
        f"rt-weight ::= {number_upto(MAX_WEIGHT)}",
        f"rt-target-weight ::= {number_upto(MAX_WEIGHT, positive=True)}",
        f"rt-dose ::= {number_upto(max_dose_level(case))}",
    ])
    entry = {"type": "object", "additionalProperties": False, "required": list(FIELDS),
             "properties": {"weight": {"type": "number", "minimum": 0, "maximum": MAX_WEIGHT},
                            "dose_Gy": {"type": "number", "minimum": 0, "maximum": max_dose_level(case)}}}
    schema = {"type": "object", "additionalProperties": False, "required": list(case.structures),
              "properties": {s: entry for s in case.structures}}
    return ValueFormat("radiotherapy-plan", gbnf, json_schema=schema, max_tokens=MAX_TOKENS)
