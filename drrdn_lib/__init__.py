"""drrdn_lib: a reference reproduction of DRRDN (Yang, Guo, Wang, Xu, AAAI 2021).

Modules, one idea each: ``validate`` and ``torch_utils`` (input checks, modes, batched
prediction), ``stats`` (every claim's statistics: Wilson, paired McNemar, seeds, Holm), ``data`` (datasets), ``models``
(backbones and heads), ``drrdn`` (the DRRDN network), ``attacks`` and ``attack_registry``,
``protocol`` (the paper's presets), ``objective_base``, ``drrdn_objective`` and ``methods``
(training objectives and their updates), ``train`` (the training loop), ``evaluate`` and
``masking_checks``, ``probes`` and ``bounds`` (the trade-off bound's terms), ``toy`` and
``toy_tables`` (the Tsipras et al. distribution), ``experiments`` (what notebooks call).
README's library map has the rest.
"""
__version__ = "0.1.0"
