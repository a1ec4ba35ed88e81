"""The registered environments with the option sets the generic tests run them under."""

import envs


def env_cases() -> list[tuple[str, dict]]:
    """MPE scenarios with discrete and continuous actions; other environments as registered."""
    cases = []
    for name in envs.list_envs():
        if name.startswith("mpe/"):
            cases += [(name, {"continuous_actions": c}) for c in (False, True)]
        else:
            cases.append((name, {}))
    return cases


CASES = env_cases()
IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts in CASES]
