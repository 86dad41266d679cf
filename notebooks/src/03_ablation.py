# %% [markdown]
# # 03 · Ablation: which of DRRDN's loss terms matter?
#
# **Question.** DRRDN's objective (Eq. 11; docs/method.md) adds five losses to the
# classification of natural and adversarial `z_s`: the domain classifier's loss L_BC
# (`lambda_bc`), the alignment of `z_s` against it L_ADV (`lambda_adv`), the entropy loss
# that empties `z_i` of class information L_ENT (`lambda_ent`), mutual information
# (`lambda_mi`) and reconstruction (`lambda_rec`). The paper's Table 4 removes MI and
# reconstruction; switching each loss off in turn, and all the disentanglement losses at
# once (the control: what is left is PGD-AT plus a natural-example term through the same
# heads), on the same network, data and budget, how do natural and robust accuracy move? CI-scale defaults as in notebook 02; see its
# parameter files.

# %% tags=["parameters"]
dataset = "mnist5k"
seeds = [0]
epochs = 4
train_limit = 1000
eps = 0.2
train_steps = 5
eval_steps = 10
lr = 0.05
batch_size = 32
eval_limit = 200
autoattack = "fast"
eps_ramp_epochs = 0     # training eps grows from 0 over this many epochs (cpu scale: 1)
bf16 = False            # train under bfloat16 autocast (evaluation attacks stay float32)
channels_last = False   # NHWC memory format (faster convolutions on CPU)
variants = None         # names of experiments.ABLATIONS to run (None: all seven)
from_zoo = False        # the full DRRDN is the zoo's model (trained with these parameters)
device = "cpu"
data_dir = None
out_dir = None

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, paper_numbers, results
from drrdn_lib.data import load_dataset

NAME = "03_ablation"
out = results.run_dir(NAME, out_dir)
train_kw = experiments.ablation_training_kw(globals())
eval_kw = dict(limit=eval_limit, pgd_steps=eval_steps, eps=eps, autoattack=autoattack,
               data_dir=data_dir, checks="cheap")
variants = experiments.ablation_variants(variants)  # the paper's Table 4, each loss off, the control

# %%
rows = []
for variant in variants:
    for seed in seeds:
        run = experiments.ablation_run(variant, dataset, seed=seed, from_zoo=from_zoo, **train_kw)
        record = experiments.evaluate_model(run.best_model, dataset, seed=seed, **eval_kw)
        rows.append({"variant": variant, "seed": seed, "best epoch": run.best["epoch"],
                     **record.summary()})
frame = pd.DataFrame(rows)
n_test = len(load_dataset(dataset, "test", limit=eval_limit, data_dir=data_dir)[1])
summary = experiments.summarise_accuracies(frame, "variant", ["clean", "pgd", "worst_case"], n_test)
table = summary.assign(accuracy=[experiments.format_accuracy(r.value, r.lo, r.hi, r.kind, r.n)
                                 for r in summary.itertuples()])
table = table.pivot(index="model", columns="column", values="accuracy").loc[list(variants), ["clean", "pgd", "worst_case"]]
table.columns = ["natural %", f"PGD-{eval_steps} %", "worst case over every attack %"]
display(Markdown(f"Accuracy on {n_test} test images ({'95% Wilson interval' if len(seeds) == 1 else f'mean ± sd over {len(seeds)} seeds'}); "
                 f"the attacks: FGSM, PGD-{eval_steps}, CW-{eval_steps} and "
                 f"{experiments.attack_label('autoattack', autoattack)}."))
table

# %% [markdown]
# ### Beside the paper's Table 4
# The paper reports PGD-40 and PGD-100 accuracy (MNIST, eps 0.3) for DRRDN, DRRDN without
# MI and DRRDN without reconstruction. Ours is PGD-{eval_steps} at this run's eps and scale,
# so the difference measures the scale as much as the method; read it only with the
# cpu parameter file (eps 0.3, `eval_steps` 40).

# %%
TABLE4_ROWS = {experiments.FULL_DRRDN: "DRRDN", "without MI": "DRRDN without MI",
               "without reconstruction": "DRRDN without reconstruction"}
pgd_cells = summary[summary.column == "pgd"].set_index("model")
learned = claims.trained_models(summary[summary.column == "clean"].set_index("model")["value"].to_dict(),
                                standard=experiments.FULL_DRRDN)
paper_rows = []
for variant, paper_row in TABLE4_ROWS.items():
    if variant not in variants:
        continue
    r = pgd_cells.loc[variant]
    paper = paper_numbers.paper_value("table4", paper_row, "pgd40")
    paper_rows.append({"variant": variant, "paper row": paper_row, "paper PGD-40 %": paper,
                       "paper PGD-100 %": paper_numbers.paper_value("table4", paper_row, "pgd100"),
                       f"ours PGD-{eval_steps} % [interval]": experiments.format_accuracy(r.value, r.lo, r.hi, r.kind, r.n),
                       "ours - paper PGD-40 (points)": round(100 * r.value - paper, 1),
                       "paper inside our interval": 100 * r.lo <= paper <= 100 * r.hi,
                       "learned": "yes" if learned[variant] else "NOT TRAINED (not compared)"})
paper_table = pd.DataFrame(paper_rows)
paper_table

# %%
sns.set_theme(style="whitegrid")
fig, ax = plt.subplots(figsize=(8, 4))
plot = summary[summary.column != "pgd"]
plot = plot.assign(what=plot.column.map({"clean": "natural", "worst_case": "worst case"}))
for offset, (what, part) in zip((-0.18, 0.18), plot.groupby("what", sort=False)):
    y = [list(variants).index(m) + offset for m in part.model]
    ax.errorbar(part.value, y, xerr=[part.value - part.lo, part.hi - part.value], fmt="o",
                capsize=3, label=what)
ax.set_yticks(range(len(variants)), list(variants))
ax.invert_yaxis()
ax.axvline(1.0, color="grey", lw=0.8)
ax.legend(loc="lower left", bbox_to_anchor=(1.01, 0.0), frameon=False)
ax.set(xlabel="accuracy (95% Wilson interval)" if len(seeds) == 1 else "accuracy (mean ± sd)",
       ylabel="", xlim=(0, 1.02),
       title=(f"DRRDN ablation, CI scale: {dataset}, {train_limit} images, eps {eps}, {n_test} test images"
              if train_limit else f"DRRDN ablation, cpu scale: {dataset}, {epochs} epochs, {n_test} test images"))
results.save_figure(fig, out, "ablation");

# %% [markdown]
# ## What this run shows

# %%
means = frame.groupby("variant", sort=False)[["clean", "worst_case"]].mean()
metrics = {"parameters": dict(dataset=dataset, seeds=seeds, epochs=epochs, train_limit=train_limit,
                              eps=eps, train_steps=train_steps, eval_steps=eval_steps,
                              eval_limit=eval_limit, autoattack=autoattack, variants=variants,
                              eps_ramp_epochs=eps_ramp_epochs, bf16=bf16, channels_last=channels_last),
           "rows": rows, "accuracy": means.to_dict("index"),
           "summary": summary.to_dict("records"), "n_test": n_test,
           "cells": {v: {r.column: {"value": r.value, "lo": r.lo, "hi": r.hi, "n": r.n, "kind": r.kind}
                         for r in summary[summary.model == v].itertuples()} for v in variants},
           "paper_comparison": paper_rows}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
