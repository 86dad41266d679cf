"""drrdn_lib: a reference reproduction of DRRDN (Yang, Guo, Wang, Xu, AAAI 2021).

Modules, one idea each: ``data`` (datasets), ``models`` (backbones and heads),
``attacks``, ``evaluate``, ``methods`` (training objectives), ``drrdn`` (the DRRDN
network), ``train`` (the training loop), ``bounds`` (the trade-off bound's terms),
``toy`` (the Tsipras et al. distribution and its closed forms).
"""
__version__ = "0.1.0"
