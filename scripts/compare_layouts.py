"""Does evaluating in channels_last change the science? Per zoo model, the paper's white-box
attacks (``experiments.paper_attacks``: FGSM, PGD-40/100, CW-40/100) on the 1,000
stratified official test digits and, with ``--autoattack-limit k``, the standard AutoAttack
on k stratified official test digits (their own stratified draw), each run twice through
``evaluate.evaluate``: kernels in NCHW and in channels_last. Counts the digits whose
outcome differs per attack, and the seconds each layout took (one thread: run it beside
nothing else, or read the times as a rough ratio). Written after every model to ``--out``
(JSON), so a killed run keeps what it finished and ``--resume`` skips those models.

    DRRDN_DATA=... python scripts/compare_layouts.py pgd_at trades drrdn standard \\
        --limit 1000 --autoattack-limit 100 --out docs/layout_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drrdn_lib import experiments, official_eval, zoo  # noqa: E402
from drrdn_lib.autoattack_adapter import AutoAttackAdapter  # noqa: E402
from drrdn_lib.evaluate import evaluate  # noqa: E402
from drrdn_lib.files import write_json_atomic  # noqa: E402


def compare(model, images, labels, attacks) -> dict:
    """Per attack: accuracy in each layout and the digits whose outcome differs."""
    flags, seconds = {}, {}
    for layout in ("nchw", "channels_last"):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = evaluate(model, images, labels, attacks, checks="none", progress=False,
                              channels_last=layout == "channels_last")
        seconds[layout] = round(time.perf_counter() - start, 1)
        flags[layout] = record.per_example
    out = {"n": int(len(labels)), "seconds": seconds, "attacks": {}}
    for name in ("clean", *attacks, "worst_case"):
        a, b = flags["nchw"][name], flags["channels_last"][name]
        out["attacks"][name] = {"nchw": int(a.sum()), "channels_last": int(b.sum()),
                                "differ": int((a != b).sum()),
                                "digits": [int(i) for i in torch.nonzero(a != b).flatten()]}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="zoo names")
    p.add_argument("--limit", type=int, default=1000, help="digits for the paper's attacks (0: none)")
    p.add_argument("--autoattack-limit", type=int, default=0, help="digits for AutoAttack (0: none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "docs" / "layout_check.json"))
    p.add_argument("--resume", action="store_true", help="keep the models already in --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out_path = Path(args.out)
    result = (json.loads(out_path.read_text()) if args.resume and out_path.is_file() else
              {"command": "python scripts/compare_layouts.py " + " ".join(argv or sys.argv[1:]),
               "threads": args.threads, "torch": torch.__version__, "models": {}})
    if args.limit:
        images, labels, index = official_eval.official_test_subset(args.limit)
        result["digits_sha256"] = official_eval.indices_sha256(index)
    for name in args.models:
        if name in result["models"]:
            continue
        model = zoo.load_pretrained(name)
        entry = ({"paper": compare(model, images, labels, experiments.paper_attacks("mnist"))}
                 if args.limit else {})
        if args.autoattack_limit:
            aa_images, aa_labels, _ = official_eval.official_test_subset(args.autoattack_limit)
            entry["autoattack"] = compare(model, aa_images, aa_labels,
                                          {"autoattack": AutoAttackAdapter(0.3, version="standard")})
        result["models"][name] = entry
        write_json_atomic(out_path, result)
        moved = {k: v["differ"] for part in entry.values() for k, v in part["attacks"].items()}
        print(f"{name}: digits whose outcome differs {moved}; seconds "
              f"{ {k: v['seconds'] for k, v in entry.items()} }", flush=True)


if __name__ == "__main__":
    main()
