# %% [markdown]
# # 05 · What DRRDN's representations look like, and Proposition 1's quantity
#
# **Questions.** DRRDN is meant to put what tells natural from adversarial inputs into the
# class-irrelevant part `z_i`, keep the class in `z_s`, and align the natural and adversarial
# distributions of `z_s` (Proposition 1: at the optimum of L_BC and L_ADV,
# p(z_s) = p(z'_s), i.e. JS(p(z_s) || p(z'_s)) = 0). On the models of notebook 02 (the same
# cached runs): (1) can a fresh classifier tell natural from adversarial on `z_s` versus
# `z_i`, and where does the class sit? (2) How far apart are the natural and adversarial
# distributions of the representation each method classifies (DRRDN: `z_s`; the baselines:
# their penultimate features), marginally and within each class (notebook 01: marginal
# alignment is not enough, class-conditional alignment is what robustness needs)? (3) How does
# that distance move over training, and what did DRRDN's own domain classifier `c_i` see?
#
# **Scale.** This run's scale is printed below the setup cell and the conclusions open with
# it; the defaults are notebook 02's CI parameters, so the runs are loaded from
# `results/runs`, not retrained: one Standard run on 1,000 `mnist5k` digits (eps 0.2, 4
# epochs), then every method fine-tuned from it for one epoch (the CI rule of notebook 02).
# The representation is measured on `eval_limit` test digits and their PGD versions. These
# numbers check the pipeline; they are not findings. `params/05_representations/cpu.yaml`
# shares notebook 02's cpu-scale runs (official MNIST, eps 0.3, every method from scratch).

# %% tags=["parameters"]
dataset = "mnist5k"
methods = ["standard", "pgd_at", "trades", "mart", "drrdn"]
seed = 0
# training: notebook 02's parameters (equal values load 02's cached runs)
model = None
epochs = 4
train_limit = 1000
eps = 0.2
train_steps = 3
lr = 0.05
batch_size = 32
init_from_standard = True
finetune_epochs = 1
finetune_lr = 0.005
hyper_by_method = {"trades": {"beta": 1.0}, "mart": {"beta": 1.0}}
eps_ramp_epochs = 0
bf16 = False
channels_last = False
# measurement
eval_steps = 10          # PGD steps of the adversarial test examples (None: the protocol's 40)
eval_limit = 500         # test digits, each giving a (natural, adversarial) pair
js_head = "mlp"          # the fresh discriminator: "mlp" (one hidden layer) or "linear"
js_calibration = 0.3     # share of its training pairs held back to calibrate it (0: none)
js_heldout = 0.5         # share of the pairs held out to evaluate it
noise_sd = 0.3           # the positive control: natural vs natural + N(0, noise_sd^2) pixels
over_epochs = True       # the JS at every kept epoch (needs the runs' folders: not with from_zoo)
from_zoo = False         # the zoo's checkpoints (trained with these parameters; best epoch only)
device = "cpu"
data_dir = None
out_dir = None

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from drrdn_lib import alignment, claims, experiments, representation_probes, results, stats, train
from drrdn_lib.attacks import PGD
from drrdn_lib.stats import accuracy_cell, proportion
from drrdn_lib.data import load_dataset
from drrdn_lib.torch_utils import eval_mode, predict_labels

NAME = "05_representations"
out = results.run_dir(NAME, out_dir)
names = experiments.MODEL_LABELS
protocol_scale = (dataset in ("mnist", "cifar10") and eps is None and train_steps is None
                  and eval_steps is None and train_limit is None and not init_from_standard)
scale = (f"{dataset}, the protocol's eps and attack, {epochs} training epochs" if protocol_scale else
         f"CI scale: {dataset}, {train_limit or 'all'} training images, eps {eps}, {eval_limit} test pairs")
if from_zoo and over_epochs:
    raise ValueError("from_zoo keeps each model's best epoch only: set over_epochs to False "
                     "(or train the runs with scripts/train_main_runs.py and leave from_zoo off)")
# every training parameter of the parameters cell, by name (epochs, lr, bf16, from_zoo, ...)
runs = experiments.train_for_notebook(methods, dataset, [seed], **experiments.notebook_training_kw(globals()))
x, y = (t.to(device) for t in load_dataset(dataset, "test", data_dir=data_dir, limit=eval_limit, seed=seed))
budget = experiments.eval_budget(dataset, eval_steps, eps)
attack = PGD(budget.eps, budget.step_size, budget.steps, seed=seed)
js_kw = dict(head=js_head, calibration=js_calibration, heldout_fraction=js_heldout, seed=seed)
print(f"{len(y)} test pairs, PGD-{budget.steps} at eps {budget.eps:g}; runs:",
      {m: experiments.run_origin(r) for (m, _), r in runs.items()})


# %%
display(Markdown(f"**This run's scale:** {scale}."))

# %% [markdown]
# ## 1. The models, and which of them learned
# Each checkpoint is measured once (`measure`): the PGD examples against it, its natural and
# adversarial representations, and which test digits it gets right. Natural and PGD accuracy
# on the test pairs, with 95% Wilson intervals. A model that has not learned
# (`claims.trained_models`) is shown but left out of every comparison.

# %%
noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(device)
x_noisy = (x + noise_sd * noise).clamp(0, 1)
measured = {}


def representations_of(net, images):
    """{name: (n, D)} of what the method classifies (DRRDN: z_s and c_s's penultimate)."""
    with eval_mode(net), torch.no_grad():
        rep = net.representation(images)
        if hasattr(net, "c_i"):
            return {"z_s": rep, "c_s penultimate": representation_probes.classifier_penultimate(net, rep)}
        return {"penultimate": rep}


def measure(run_dir, epoch, load=None):
    """Adversarial examples, representations and correctness of one checkpoint (cached)."""
    key = (str(run_dir), epoch)
    if key not in measured:
        net = load() if load else train.load_model(run_dir, epoch, device=device)
        adv = attack(net, x, y)
        m = {"net": net, "adv": adv, "nat": representations_of(net, x),
             "adv_rep": representations_of(net, adv), "noisy": representations_of(net, x_noisy),
             "clean": predict_labels(net, x) == y, "robust": predict_labels(net, adv) == y}
        if hasattr(net, "c_i"):
            with eval_mode(net), torch.no_grad():
                m["c_i"] = (net.c_i(m["nat"]["z_s"]).squeeze(1), net.c_i(m["adv_rep"]["z_s"]).squeeze(1))
        m["tables"] = {}
        measured[key] = m
    return measured[key]


def js_table(m, r):
    """Marginal and class-conditional JS bounds of representation ``r`` of a measurement (cached)."""
    if r not in m["tables"]:
        m["tables"][r] = alignment.alignment_table(m["nat"][r], m["adv_rep"][r], y, paired=True,
                                                   estimator="joint", **js_kw)
    return m["tables"][r]


def best_of(run):
    """The measurement of a run's selected (best) weights, shared with its kept epoch."""
    epoch = run.best["epoch"]
    kept = train.epoch_checkpoints(run.out_dir) if run.out_dir is not None else {}
    return measure(run.out_dir or run.source, epoch,
                   None if epoch in kept else (lambda: run.best_model.to(device)))


best = {m: best_of(runs[(m, seed)]) for m in methods}
accuracy = {m: {k: accuracy_cell(int(best[m][f].sum()), len(best[m][f])) for k, f in (("clean", "clean"), (f"pgd{budget.steps}", "robust"))}
            for m in methods}
trained = claims.trained_models({m: accuracy[m]["clean"]["value"] for m in methods})
pd.DataFrame([{"model": names[m], "natural": experiments.format_accuracy(**{k: a["clean"][k] for k in ("value", "lo", "hi", "kind", "n")}),
               f"PGD-{budget.steps}": experiments.format_accuracy(**{k: a[f"pgd{budget.steps}"][k] for k in ("value", "lo", "hi", "kind", "n")}),
               "learned": trained[m]} for m, a in accuracy.items()]).set_index("model")

# %% [markdown]
# ## 2. Domain and class information in DRRDN's parts
# `domain_acc`: held-out accuracy of a fresh natural-vs-adversarial classifier (0.5: cannot
# tell) with its interval. `label_acc`: held-out accuracy of a linear probe for the class.
# `rec_error`: relative squared error of the reconstruction of `z`. The two parts are
# probed on the same held-out examples, so `z_s` and `z_i` compare by a paired test (exact
# McNemar, Holm over the two comparisons the conclusions draw).

# %%
drrdn = best["drrdn"] if "drrdn" in best else None
if drrdn is not None:
    sets = representation_probes.representation_sets(drrdn["net"], x, y, attack, adversarial=drrdn["adv"])
    summary = pd.DataFrame(representation_probes.disentanglement_summary(sets, y, seed=seed)).set_index("part")
    paired = representation_probes.disentanglement_paired(sets, y, seed=seed)
    display(summary.round(3))
    display(pd.DataFrame([{"comparison": f"{r['a']} vs {r['b']}", "accuracies": f"{r['acc_a']:.3f} vs {r['acc_b']:.3f}",
                           "discordant": f"{r['a_only']} / {r['b_only']}", "McNemar p (Holm)": stats.format_p(r["p_holm"])}
                          for r in paired]).set_index("comparison"))

# %%
if drrdn is not None:
    sns.set_theme(style="white")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, part in zip(axes, ("z_s", "z_i")):
        nat, adv = representation_probes.pca_2d(sets["nat"][part], sets["adv"][part])
        ax.scatter(*nat.T.cpu(), c=y.cpu(), cmap="tab10", vmin=0, vmax=9, s=8, marker="o")
        ax.scatter(*adv.T.cpu(), c=y.cpu(), cmap="tab10", vmin=0, vmax=9, s=8, marker="x")
        ax.set(title=f"DRRDN {part}: first two principal axes", xticks=[], yticks=[])
    kinds = [plt.Line2D([], [], ls="", marker=mk, color="black", label=lb)
             for mk, lb in (("o", "natural"), ("x", "adversarial"))]
    kinds += [plt.Line2D([], [], ls="", marker="s", color=plt.get_cmap("tab10")(k), label=f"digit {k}")
              for k in range(10)]
    fig.legend(handles=kinds, loc="center left", frameon=False, bbox_to_anchor=(1.0, 0.5),
               fontsize="small", title="marker = domain\ncolour = class", title_fontsize="small")
    fig.suptitle(f"Colour = digit class; {scale}, PGD-{budget.steps}", fontsize=10)
    results.save_figure(fig, out, "pca_z_s_z_i")

# %% [markdown]
# ## 3. The estimator, and two controls on the same data
# JS(p || q) >= log 2 - H(D) for every discriminator D (H: its balanced cross-entropy,
# natural = "p"), in nats: 0 means indistinguishable, log 2 = 0.693 disjoint
# (`alignment.js_lower_bound`). D is a fresh `js_head` fitted on part of the pairs, its
# logit calibrated (Platt scaling) on a held-back share of them, and the bound is evaluated
# on the held-out pairs, with a 95% normal interval. Without calibration a flexible D fitted
# on a few hundred wide rows is over-confident and the bound falls below 0 even when D tells
# the domains apart (the previous version of this notebook reported nothing but such
# negative values). The class-conditional bound uses one D on `[z, one-hot(y)]`: with the same
# classes in both samples, JS(p(z, y) || q(z, y)) is the class-weighted mean of the
# within-class JS, and it is never below the marginal JS. A bound whose interval reaches 0 is
# read as **no divergence detected with these pairs**, not as "aligned".
#
# Controls, for every representation: two random halves of the natural digits (one
# distribution: the bound must not be clearly above 0), and the natural digits against the
# same digits plus Gaussian pixel noise (sd `noise_sd`; a shift that surely exists: the bound
# should detect it). The halves are drawn at random because the test subset keeps the test
# set's order, and the official MNIST test set's first and last 5,000 digits come from two
# different groups of writers: its first half against its last half is a real shift (this
# estimator found one before the halves were drawn at random: up to 0.068 nats on the
# cpu-scale models, 2,000 digits).

# %%
compared = [(m, r) for m in methods for r in best[m]["nat"]]
order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
first, second = order[: len(y) // 2], order[len(y) // 2: 2 * (len(y) // 2)]
control_rows = []
for m, r in compared:
    nat = best[m]["nat"][r]
    same = alignment.js_lower_bound(nat[first], nat[second], **js_kw)
    shift = alignment.js_lower_bound(nat, best[m]["noisy"][r], paired=True, **js_kw)
    for control, b in (("same distribution", same), (f"natural + noise (sd {noise_sd:g})", shift)):
        control_rows.append({"method": m, "representation": r, "control": control, "nats": b.nats,
                             "lo": b.lo, "hi": b.hi, "accuracy": b.accuracy.value})
controls = pd.DataFrame(control_rows)
controls.pivot_table(index=["method", "representation"], columns="control", values=["nats", "lo"], sort=False).round(3)

# %% [markdown]
# ## 4. Proposition 1's quantity, by method
# Natural against adversarial representation of the same test digits. DRRDN appears twice:
# its `z_s` (what Proposition 1 is about, 1,024-wide on SmallCNN) and `c_s`'s penultimate
# layer applied to `z_s` (200-wide, the counterpart of the baselines' penultimate features; by
# data processing its JS cannot exceed that of `z_s`).

# %%
js_rows = []
for m, r in compared:
    b = best[m]
    for kind, row in js_table(b, r).iterrows():
        js_rows.append({"method": m, "representation": r, "alignment": kind, "nats": row.nats,
                        "lo": row.lo, "hi": row.hi, "accuracy": row.accuracy,
                        "accuracy_lo": row.accuracy_lo, "accuracy_hi": row.accuracy_hi,
                        "pairs": len(y), "width": b["nat"][r].shape[1],
                        **{k: row[k] for k in ("minus_marginal", "minus_marginal_lo",
                                               "minus_marginal_hi", "minus_marginal_p")}})
js = pd.DataFrame(js_rows)
# Proposition 1's comparison, DRRDN against each trained baseline on the same held-out pairs:
# the paired difference of the marginal bounds (DRRDN minus baseline, nats), Holm over them
marginal = {(m, r): alignment.js_lower_bound(best[m]["nat"][r], best[m]["adv_rep"][r], paired=True, **js_kw)
            for m, r in compared}
js_pairs = [(a, b) for a in compared if a[0] == "drrdn" for b in compared
            if b[0] != "drrdn" and trained[b[0]]] if trained.get("drrdn") else []
js_paired = alignment.paired_js_rows(marginal, js_pairs)
display(js.pivot_table(index=["method", "representation"], columns="alignment", values=["nats", "lo", "hi"], sort=False).round(3))
pd.DataFrame(js_paired).round(4) if js_paired else None


# %%
def row_label(m, r):
    return names[m] if r == "penultimate" else f"{names[m]}: {r}"


fig, ax = plt.subplots(figsize=(9, 4.2))
labels_x = [row_label(m, r) + ("" if trained[m] else "\n(not trained)") for m, r in compared]
for offset, (kind, part) in zip((-0.15, 0.15), js.groupby("alignment", sort=False)):
    xs = [compared.index((m, r)) + offset for m, r in zip(part.method, part.representation)]
    ax.errorbar(xs, part.nats, yerr=[part.nats - part.lo, part.hi - part.nats], fmt="o", capsize=3,
                label=f"{kind} (95% interval)")
ax.axhline(0.693, color="grey", lw=0.8, ls="--", label="log 2: disjoint")
ax.axhline(0.0, color="black", lw=0.8, label="0: no divergence detected")
ax.set_xticks(range(len(compared)), labels_x, fontsize=8)
ax.set(ylabel="JS lower bound (nats)", ylim=(min(-0.05, float(js.lo.min()) - 0.05), 0.75),
       title=f"Natural vs adversarial representation, {scale}\n"
             f"(PGD-{budget.steps}; {'calibrated ' if js_calibration else ''}{js_head.upper() if js_head == 'mlp' else js_head} discriminator)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
results.save_figure(fig, out, "js_by_method")

# %% [markdown]
# ## 5. Over training, and what DRRDN's domain classifier saw
# The same bound at every epoch whose weights the runs kept (`experiments.training_path`:
# with `init_from_standard` the first epochs are the shared Standard pre-training, its
# penultimate features, then each method's own epochs). Beside it, DRRDN's `c_i`: its
# accuracy on `z_s` and on `z_i` as training logged it (the mean over the epoch's batches,
# with a Wilson interval on the epoch's 2 x training images; `c_i` changes during the
# epoch), and, on the held-out test pairs, `c_i`'s own accuracy on `z_s` and the JS bound it
# gives (`alignment.js_bound_of`: `c_i` never saw these digits). Proposition 1 assumes `c_i`
# is the optimal discriminator; a fresh one doing much better says it is not.

# %%
epoch_rows, ci_rows = [], []
n_train_images = len(load_dataset(dataset, "train", data_dir=data_dir, limit=train_limit, seed=0)[1])
if over_epochs:
    for m in methods:
        run = runs[(m, seed)]
        history = {h["epoch"]: h for h in run.history}
        path, marginal_at = experiments.training_path(run), []
        for step in path:
            kept = {"run_dir": str(step["run_dir"]), "epoch": step["run_epoch"],
                    "from_start": step["epoch"], "stage": step["stage"]}
            mm = measure(kept["run_dir"], kept["epoch"])
            r = next(iter(mm["nat"]))
            for kind, row in js_table(mm, r).iterrows():
                epoch_rows.append({"method": m, **kept, "run_dir": Path(kept["run_dir"]).name,
                                   "representation": r, "alignment": kind,
                                   "nats": row.nats, "lo": row.lo, "hi": row.hi,
                                   "accuracy": row.accuracy, "accuracy_lo": row.accuracy_lo,
                                   "accuracy_hi": row.accuracy_hi})
            bound = alignment.js_lower_bound(mm["nat"][r], mm["adv_rep"][r], paired=True, **js_kw)
            marginal_row = next(e for e in reversed(epoch_rows) if e["alignment"] == "marginal")
            marginal_at.append((step["stage"], marginal_row, bound))
            if "c_i" in mm and kept["stage"] == "own":
                h = history[kept["epoch"]]
                fixed = alignment.js_bound_of(*mm["c_i"], paired=True)
                row = {"epoch": kept["epoch"], "from_start": kept["from_start"],
                       "c_i_bound": fixed.nats, "c_i_bound_lo": fixed.lo, "c_i_bound_hi": fixed.hi}
                for part in ("s", "i"):
                    logged = proportion(round(h[f"train_domain_acc_{part}"] * 2 * n_train_images), 2 * n_train_images)
                    row.update({f"train_acc_z_{part}": logged.value, f"train_acc_z_{part}_lo": logged.lo,
                                f"train_acc_z_{part}_hi": logged.hi})
                row.update({"heldout_acc_z_s": fixed.accuracy.value, "heldout_acc_z_s_lo": fixed.accuracy.lo,
                            "heldout_acc_z_s_hi": fixed.accuracy.hi})
                # c_i against a fresh discriminator on the same held-out rows: exact McNemar
                fresh = bound if r == "z_s" else alignment.js_lower_bound(
                    mm["nat"]["z_s"], mm["adv_rep"]["z_s"], paired=True, **js_kw)
                versus = stats.compare_paired(alignment.fixed_right(fresh, *mm["c_i"]), fresh.right)
                row.update({"vs_fresh_n": versus.n, "c_i_only": versus.a_only, "fresh_only": versus.b_only,
                            "vs_fresh_p": versus.p_value})
                ci_rows.append(row)
        # the last kept epoch against where the method's own training started, on the same pairs
        pre = [a for a in marginal_at if a[0] == "pre-training"]
        own = [a for a in marginal_at if a[0] == "own"]
        if own and (pre or len(own) > 1):
            (_, _, start), (_, last_row, last) = (pre[-1] if pre else own[0]), own[-1]
            d, p = alignment.paired_js_difference(last, start)
            last_row.update(minus_start=d.value, minus_start_lo=d.lo, minus_start_hi=d.hi, minus_start_p=p)
over = pd.DataFrame(epoch_rows)
c_i = pd.DataFrame(ci_rows)
if len(over):
    display(over.pivot_table(index=["from_start", "stage"], columns=["alignment", "method"], values="nats", sort=False).round(3))
c_i.round(3)

# %%
if len(over):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    palette = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    for ax, (kind, part) in zip(axes, over.groupby("alignment", sort=False)):
        pre = part[part.stage == "pre-training"].drop_duplicates("from_start")
        if len(pre):
            ax.errorbar(pre.from_start, pre.nats, yerr=[pre.nats - pre.lo, pre.hi - pre.nats], color="grey",
                        marker="s", capsize=3, label="Standard pre-training (shared start)")
            ax.axvline(pre.from_start.max() + 0.5, color="grey", lw=0.6, ls=":")
        for i, (m, own) in enumerate(part[part.stage == "own"].groupby("method", sort=False)):
            jitter = 0.06 * (i - (len(methods) - 1) / 2)
            ax.errorbar(own.from_start + jitter, own.nats, yerr=[own.nats - own.lo, own.hi - own.nats],
                        marker="o", capsize=3, color=palette[m],
                        label=row_label(m, own.representation.iloc[0]) + ("" if trained[m] else " (not trained)"))
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set(title=f"{kind}", xlabel="epochs since the random start", ylabel="JS lower bound (nats)")
        ax.set_xticks(sorted(part.from_start.unique()))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    fig.suptitle(f"Natural vs adversarial representation over training, {scale} (95% intervals)", fontsize=10)
    results.save_figure(fig, out, "js_over_epochs")

# %%
if len(c_i):
    fig, ax = plt.subplots(figsize=(8, 3.8))
    drrdn_marginal = over[(over.method == "drrdn") & (over.stage == "own") & (over.alignment == "marginal")]
    series = [("c_i on z_s, as training logged it", "train_acc_z_s", c_i),
              ("c_i on z_i, as training logged it", "train_acc_z_i", c_i),
              ("c_i on z_s, held-out test pairs", "heldout_acc_z_s", c_i),
              ("fresh calibrated discriminator on z_s, held-out", "accuracy", drrdn_marginal)]
    for i, (label, col, frame) in enumerate(series):
        lo, hi = frame[f"{col}_lo"], frame[f"{col}_hi"]
        ax.errorbar(frame.from_start + 0.08 * (i - 1.5), frame[col], yerr=[frame[col] - lo, hi - frame[col]],
                    fmt="o", capsize=3, label=label)
    ax.axhline(0.5, color="black", lw=0.8, label="50%: cannot tell")
    ax.set(xlabel="epochs since the random start", ylabel="natural vs adversarial accuracy", ylim=(0.4, 1.0),
           title=f"DRRDN's domain classifier c_i and a fresh one, {scale}")
    ax.set_xticks(sorted(c_i.from_start.unique()))
    ax.set_xlim(c_i.from_start.min() - 0.5, c_i.from_start.max() + 0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    results.save_figure(fig, out, "c_i_over_epochs")

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": dict(dataset=dataset, methods=methods, seed=seed, epochs=epochs,
                              train_limit=train_limit, eps=eps, train_steps=train_steps, lr=lr,
                              init_from_standard=init_from_standard, finetune_epochs=finetune_epochs,
                              finetune_lr=finetune_lr, eval_steps=eval_steps, eval_limit=eval_limit,
                              js_head=js_head, js_calibration=js_calibration, js_heldout=js_heldout,
                              noise_sd=noise_sd, over_epochs=over_epochs, from_zoo=from_zoo),
           "scale": scale, "protocol_scale": protocol_scale, "attack_steps": budget.steps,
           "labels": {m: names[m] for m in methods}, "accuracy": accuracy, "trained": trained,
           "summary": summary.reset_index().to_dict("records") if drrdn is not None else [],
           "paired": paired if drrdn is not None else [],
           "controls": controls.to_dict("records"), "js": js.to_dict("records"), "js_paired": js_paired,
           "over_epochs": over.to_dict("records"), "c_i": c_i.to_dict("records")}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
