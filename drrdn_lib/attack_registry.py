"""Every attack by name, AutoAttack included: ``make_attack("pgd", budget)``.

The registry lives here, above both :mod:`drrdn_lib.attacks` (the white-box attacks and
their base class) and :mod:`drrdn_lib.autoattack_adapter` (which subclasses that base
class), so the imports run one way and nothing registers itself as a side effect.
"""
from __future__ import annotations

import inspect
import math

from .attacks import FGSM, PGD, Attack, AttackBudget, CWInf
from .autoattack_adapter import AutoAttackAdapter

__all__ = ["ATTACKS", "make_attack", "attack_from_config"]

#: name -> attack class, each called ``attack(model, images, labels) -> adv``.
ATTACKS: dict[str, type[Attack]] = {"fgsm": FGSM, "pgd": PGD, "cw": CWInf,
                                    "autoattack": AutoAttackAdapter}


def make_attack(name: str, budget: AttackBudget | None = None, **kwargs) -> Attack:
    """Build a registered attack: ``make_attack("pgd", eps=8/255, step_size=2/255, steps=20)``
    or ``make_attack("pgd", budget, restarts=5)``.

    The fields of ``budget`` (or ``eps``/``step_size``/``steps`` keywords) that the attack
    does not take are dropped: FGSM takes one step of size eps, AutoAttack is
    parameter-free. Any other keyword goes to the constructor.
    """
    if name not in ATTACKS:
        raise ValueError(f"Unknown attack {name!r}; choose one of {sorted(ATTACKS)}.")
    cls = ATTACKS[name]
    budget_fields = budget.to_dict() if budget is not None else {}
    for key in ("eps", "step_size", "steps"):
        if key in kwargs:
            budget_fields[key] = kwargs.pop(key)
    accepted = inspect.signature(cls.__init__).parameters
    budget_fields = {k: v for k, v in budget_fields.items() if k in accepted}
    return cls(**budget_fields, **kwargs)


#: the constructor arguments each attack's ``config()`` records (the rest is derived)
_CONFIG_ARGS = {"fgsm": ("eps", "bounds"),
                "pgd": ("eps", "step_size", "steps", "norm", "random_start", "restarts", "loss",
                        "kappa", "seed", "bounds"),
                "cw": ("eps", "step_size", "steps", "kappa", "random_start", "restarts", "seed",
                       "bounds")}


def attack_from_config(config: dict) -> Attack:
    """The attack an ``attack.config()`` dict describes (FGSM, PGD, CW-inf), so that a
    stored evaluation can be re-run exactly: ``attack_from_config(pgd.config())`` equals
    ``pgd`` in every setting. AutoAttack is not rebuilt (its config records the package's
    settings, not the constructor's)."""
    name = config.get("name") if isinstance(config, dict) else None
    if name not in _CONFIG_ARGS:
        raise ValueError(f"cannot rebuild an attack from {config!r}: its 'name' must be one of "
                         f"{sorted(_CONFIG_ARGS)} (a dict written by Attack.config()).")
    missing = [k for k in _CONFIG_ARGS[name] if k not in config]
    if missing:
        raise ValueError(f"the {name} config lacks {missing}; pass the dict Attack.config() wrote.")
    kwargs = {k: config[k] for k in _CONFIG_ARGS[name]}
    if kwargs.get("bounds") is not None:
        kwargs["bounds"] = tuple(kwargs["bounds"])
    if name == "pgd" and kwargs["kappa"] is None:
        kwargs["kappa"] = math.inf  # config() writes an uncapped margin as null
    return ATTACKS[name](**kwargs)
