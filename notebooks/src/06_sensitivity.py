# %% [markdown]
# # 06 · Sensitivity: accuracy against eps, and the accuracy-robustness frontier
#
# **Question.** (a) How does each method's accuracy fall as the attack radius grows beyond
# the training eps? It should fall monotonically, to below chance well beyond the training
# eps; a plateau or a rise would hint at gradient masking. (b) Sweeping DRRDN's alignment weight `lambda_adv` and TRADES's
# `beta` traces two accuracy-robustness frontiers on the same axes (robust: the worst case
# over FGSM, PGD, CW and AutoAttack): does DRRDN's lie above and to the right?
#
# **Scale.** This run's scale is printed below the setup cell and the conclusions open with
# it; the defaults are notebook 02's CI recipe (the same cached runs): 1,000
# `mnist5k` training digits, eps 0.2, one Standard run fine-tuned one epoch by every method
# and every point of the sweeps, 200 test digits, a reduced AutoAttack. Its numbers check
# the pipeline; they are not findings. Every accuracy has its 95% Wilson interval; a model
# that has not learned (notebook 02's rule) is drawn hollow and dashed and never compared.

# %% tags=["parameters"]
dataset = "mnist5k"     # mnist5k | mnist | cifar10
model = None            # None: the protocol's
methods = ["standard", "pgd_at", "trades", "mart", "drrdn"]
seed = 0
epochs = 4              # training epochs (of Standard pre-training when init_from_standard)
train_limit = 1000      # None: the whole training split
eps = 0.2               # training eps; None: the protocol's
train_steps = 3         # None: the protocol's training PGD
lr = 0.05               # None: the protocol's
batch_size = 32
init_from_standard = True   # notebook 02's CI rule: every run fine-tunes one Standard run
finetune_epochs = 1
finetune_lr = 0.005
hyper_by_method = {"trades": {"beta": 1.0}, "mart": {"beta": 1.0}}
eps_ramp_epochs = 0
bf16 = False
channels_last = False
eps_grid = [0.0, 0.1, 0.2, 0.3, 0.4]
lambda_adv_grid = [0.0, 1.0, 3.0]
beta_grid = [1.0, 3.0, 6.0]
eval_steps = 10         # PGD/CW steps (None: the protocol's)
eval_limit = 200        # test images (stratified)
autoattack = "fast"     # "standard" to report; "fast" is the reduced one (CI only)
device = "cpu"
data_dir = None
out_dir = None          # None: results/06_sensitivity

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, plots, results, stats

NAME = "06_sensitivity"
out = results.run_dir(NAME, out_dir)
names = experiments.MODEL_LABELS
train_eps = eps if eps is not None else experiments.protocol(dataset)["train"].eps
protocol_scale = (dataset in ("mnist", "cifar10") and eps is None and train_limit is None
                  and not init_from_standard and autoattack == "standard")
scale = ("the protocol's scale" if protocol_scale else
         f"CI scale: {dataset}, {train_limit or 'all'} training images, eps {eps}, {eval_limit} test images")
recipe = dict(epochs=epochs, train_limit=train_limit, batch_size=batch_size, eps=eps,
              train_steps=train_steps, lr=lr, model=model, device=device, data_dir=data_dir,
              init_from_standard=init_from_standard, finetune_epochs=finetune_epochs,
              finetune_lr=finetune_lr, bf16=bf16, channels_last=channels_last,
              eps_ramp_epochs=eps_ramp_epochs)


def run_of(method, hyper=None):
    """The shared run of ``method`` (notebook 02's recipe) with ``hyper`` over notebook 02's."""
    chosen = {**hyper_by_method, method: {**hyper_by_method.get(method, {}), **(hyper or {})}}
    return experiments.train_for_notebook([method], dataset, [seed], hyper_by_method=chosen,
                                          **recipe)[(method, seed)]


records = {}


def evaluated(run):
    """Clean, FGSM, PGD, CW, AutoAttack and their worst case at the training eps, once per run."""
    key = str(run.out_dir)
    if key not in records:
        records[key] = experiments.evaluate_model(run.best_model, dataset, eps=eps, limit=eval_limit,
                                                  pgd_steps=eval_steps, autoattack=autoattack,
                                                  checks="cheap", seed=seed, data_dir=data_dir)
    return records[key]


def point(record):
    return {"clean": stats.accuracy_cell(record.n_clean_correct, record.n),
            "worst_case": stats.accuracy_cell(record.n_worst_case_correct, record.n)}


def right_of(record):
    """Which test digits the model gets right: natural, and under every attack (worst case)."""
    return {c: record.per_example[c].cpu().numpy() for c in ("clean", "worst_case")}



# %%
display(Markdown(f"**This run's scale:** {scale}."))

# %% [markdown]
# ## 1. The models (shared with notebook 02) and who learned

# %%
runs = {m: run_of(m) for m in methods}
at_train_eps = {m: point(evaluated(runs[m])) for m in methods}
trained = claims.trained_models({m: at_train_eps[m]["clean"]["value"] for m in methods})
pd.DataFrame([{"model": names[m], "natural % [95% CI]": experiments.format_accuracy(**at_train_eps[m]["clean"]),
               "worst case % [95% CI]": experiments.format_accuracy(**at_train_eps[m]["worst_case"]),
               "learned": "yes" if trained[m] else "NOT TRAINED"} for m in methods])

# %% [markdown]
# ## 2. (a) PGD accuracy against eps
# PGD with `eval_steps` steps of 2.5 eps / steps at each eps (eps 0: clean accuracy).

# %%
curves, curve_right = {}, {}
for m in methods:
    curves[m], curve_right[m] = experiments.pgd_accuracy_curve(
        runs[m].best_model, dataset, eps_grid, limit=eval_limit, pgd_steps=eval_steps, seed=seed,
        data_dir=data_dir, return_right=True)
display(Markdown(f"**PGD accuracy % [95% Wilson interval], {scale}.**"))
pd.DataFrame({names[m]: {e: experiments.format_accuracy(**c) for e, c in curves[m].items()} for m in methods}
             ).rename_axis("eps")

# %% [markdown]
# ## 3. (b) Frontiers: DRRDN's `lambda_adv` and TRADES's `beta`
# Each point is a run fine-tuned from the same Standard run with one value (the others at
# notebook 02's); the remaining methods are single reference points.

# %%
points, point_right = [], {}
for family, method, key, grid in (("DRRDN lambda_adv sweep", "drrdn", "lambda_adv", lambda_adv_grid),
                                  ("TRADES beta sweep", "trades", "beta", beta_grid)):
    for value in grid:
        record = evaluated(run_of(method, {key: value}))
        points.append({"family": family, "value": value, "label": f"{names[method]}, {key} {value:g}",
                       **point(record)})
        point_right[points[-1]["label"]] = right_of(record)
for m in methods:
    if m not in ("drrdn", "trades"):
        points.append({"family": names[m], "value": None, "label": names[m], **at_train_eps[m]})
standard_clean = at_train_eps["standard"]["clean"]["value"] if "standard" in at_train_eps else None
learned = claims.trained_models({p["label"]: p["clean"]["value"] for p in points}
                                | ({"standard": standard_clean} if standard_clean is not None else {}))
for p in points:
    p["trained"] = learned[p["label"]]

# Paired tests (exact McNemar, Holm within each family): one model's PGD accuracy at
# neighbouring eps (the same digits), and every pair of trained sweep points, one from each
# sweep, natural and worst case (the same digits)
eps_rows = stats.paired_rows(
    {f"{m} eps {e:g}": v for m in methods for e, v in curve_right[m].items()},
    [(f"{m} eps {b:g}", f"{m} eps {a:g}") for m in methods if trained[m]
     for a, b in zip(sorted(eps_grid), sorted(eps_grid)[1:])], what="eps curve")
sweeps = [[p["label"] for p in points if p["family"] == f and p["trained"]]
          for f in ("DRRDN lambda_adv sweep", "TRADES beta sweep")]
frontier_rows = [r for column in ("clean", "worst_case") for r in stats.paired_rows(
    {k: v[column] for k, v in point_right.items()}, [(a, b) for a in sweeps[0] for b in sweeps[1]],
    what=column)]
for r, adjusted in zip(frontier_rows, stats.holm([r["p_value"] for r in frontier_rows])):
    r.update(p_holm=adjusted, family_size=len(frontier_rows))
pd.DataFrame([{"point": p["label"], "natural % [95% CI]": experiments.format_accuracy(**p["clean"]),
               "worst case % [95% CI]": experiments.format_accuracy(**p["worst_case"]),
               "learned": "yes" if p["trained"] else "NOT TRAINED"} for p in points])

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 5))
plots.plot_eps_curves(curves, names, trained, train_eps, "PGD accuracy against eps, 95% Wilson intervals",
                      ax=axes[0])
plots.plot_frontier(points, "Accuracy-robustness frontiers, 95% Wilson intervals", ax=axes[1])
fig.suptitle(f"Sensitivity ({scale}); dashed/hollow: not trained")
fig.tight_layout()
results.save_figure(fig, out, "sensitivity");

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": dict(dataset=dataset, model=model, methods=methods, seed=seed, epochs=epochs,
                              train_limit=train_limit, eps=eps, train_steps=train_steps, lr=lr,
                              batch_size=batch_size, init_from_standard=init_from_standard,
                              finetune_epochs=finetune_epochs, finetune_lr=finetune_lr,
                              hyper_by_method=hyper_by_method, eps_ramp_epochs=eps_ramp_epochs, bf16=bf16,
                              channels_last=channels_last, eps_grid=eps_grid, lambda_adv_grid=lambda_adv_grid,
                              beta_grid=beta_grid, eval_steps=eval_steps, eval_limit=eval_limit,
                              autoattack=autoattack),
           "scale": scale, "protocol_scale": protocol_scale, "n_test": eval_limit, "train_eps": train_eps,
           "chance": 0.1,
           "model_labels": {m: names[m] for m in methods}, "trained": trained,
           "not_trained_rule": claims.NOT_TRAINED_RULE,
           "accuracy": {m: {f"pgd eps {e:g}": c for e, c in curves[m].items()} for m in methods},
           "frontier": {p["label"]: {"clean": p["clean"], "worst_case": p["worst_case"]} for p in points},
           "frontier_points": points, "paired": eps_rows + frontier_rows,
           "autoattack_label": experiments.attack_label("autoattack", autoattack) if autoattack else None}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))

# %% [markdown]
# ## What it does not show
# - At CI scale, anything about the paper: one seed, 200 test images (intervals of about
#   ±7 points), one fine-tuning epoch per point from a shared Standard start, eps 0.2, a
#   reduced AutoAttack. Run `cpu.yaml` for a measurement.
# - A frontier of fully trained models: each point here moved one epoch away from the same
#   Standard start, so the sweeps measure what each weight does to that start.
