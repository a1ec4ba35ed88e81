"""The registered environments with the option sets the generic tests run them under."""

from functools import partial

import pytest

import envs
from envs.registry import _factory


def env_cases() -> list[tuple[str, dict]]:
    """MPE scenarios with discrete and continuous actions; other environments as registered
    (JaxMARL's, through the adapter, are tested in ``test_from_jaxmarl.py``)."""
    cases = []
    for name in envs.list_envs():
        if name.startswith("smax/"):
            continue
        if name.startswith("mpe/"):
            cases += [(name, {"continuous_actions": c}) for c in (False, True)]
        else:
            cases.append((name, {}))
    return cases


CASES = env_cases()
IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts in CASES]
# Registered variants (another environment's class with other defaults, e.g. cable_load/hover4)
# run their generic checks only under ``pytest -m slow``: their code is tested as the original.
SLOW_VARIANTS = [
    pytest.param(*case, id=i, marks=pytest.mark.slow)
    if isinstance(_factory(case[0]), partial)
    else pytest.param(*case, id=i)
    for case, i in zip(CASES, IDS, strict=True)
]
