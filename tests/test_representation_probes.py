"""Representation probes (notebook 05) and the probe toolkit they share with the bound."""
import pytest
import torch
from torch import nn

from drrdn_lib import probes, representation_probes
from drrdn_lib.attacks import PGD

N, CLASSES = 80, 2


class TinyDisentangler(nn.Module):
    """z = g(x) (4-D), z_s = the label-carrying half, z_i = the rest, r = identity-like."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.g = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
        self.r = nn.Linear(4, 4)
        self.head = nn.Linear(2, CLASSES)

    def representations(self, x):
        z = self.g(x)
        return {"z": z, "z_s": z[:, :2], "z_i": z[:, 2:]}

    def forward(self, x):
        return self.head(self.representations(x)["z_s"])


@pytest.fixture(scope="module")
def case():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, CLASSES, (N,), generator=gen)
    images = (0.3 + 0.4 * labels.float()[:, None, None, None]
              + 0.05 * torch.randn(N, 1, 4, 4, generator=gen)).clamp(0, 1)
    return TinyDisentangler().eval(), images, labels


def test_sets_summary_and_pca_have_the_documented_shapes(case):
    model, images, labels = case
    model.train()
    sets = representation_probes.representation_sets(model, images, labels, PGD(0.05, 0.02, 2, seed=0),
                                                     batch_size=32)
    assert model.training                                    # mode restored
    model.eval()
    assert {k: tuple(v.shape) for k, v in sets["nat"].items()} == \
        {"z": (N, 4), "z_s": (N, 2), "z_i": (N, 2), "rec": (N, 4)}
    rows = representation_probes.disentanglement_summary(sets, labels)
    assert [r["part"] for r in rows] == ["z", "z_s", "z_i"]
    assert rows[1]["label_acc_nat"] > 0.9                    # the class is linearly readable
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in r if k.startswith(("domain", "label")))
    assert rows[0]["rec_error_nat"] > 0
    nat, adv = representation_probes.pca_2d(sets["nat"]["z"], sets["adv"]["z"])
    assert nat.shape == adv.shape == (N, 2)


@pytest.mark.parametrize("change, match", [
    (lambda x, y: (x.index_fill(0, torch.tensor([3]), float("nan")), y), r"NaN/inf.*first in example 3"),
    (lambda x, y: (x.permute(0, 2, 3, 1), y), r"permute to NCHW"),
    (lambda x, y: (x, y.float()), r"labels must be an int64"),
    (lambda x, y: (x, y[:5]), r"shape \(80,\)"),
])
def test_representation_sets_rejects_bad_input(case, change, match):
    model, images, labels = case
    with pytest.raises(ValueError, match=match):
        representation_probes.representation_sets(model, *change(images, labels), PGD(0.05, 0.02, 1))


def test_summary_and_pca_reject_bad_sets():
    with pytest.raises(ValueError, match=r"sets lack"):
        representation_probes.disentanglement_summary({"nat": {}}, torch.zeros(3, dtype=torch.int64))
    bad = torch.rand(4, 3)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"block 1 holds 1 NaN/inf value\(s\) \(first in example 2\)"):
        representation_probes.pca_2d(torch.rand(4, 3), bad)


def test_probe_accuracy_reads_a_linearly_separable_label():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (120,), generator=gen)
    z = torch.randn(120, 5, generator=gen) + 4 * nn.functional.one_hot(y, 5).float()
    assert probes.probe_accuracy(z, y) > 0.95
    assert probes.probe_accuracy(torch.randn(120, 5, generator=gen), y) < 0.6
    with pytest.raises(ValueError, match=r"unknown head 'svm'"):
        probes.probe_accuracy(z, y, head="svm")
    with pytest.raises(ValueError, match=r"z has 120 rows but there are 10"):
        probes.probe_accuracy(z, y[:10])


def test_split_indices_is_seeded_disjoint_and_complete():
    train, held = probes.split_indices(50, 0.4, seed=3)
    assert (len(train), len(held)) == (30, 20)
    assert sorted(torch.cat([train, held]).tolist()) == list(range(50))
    again = probes.split_indices(50, 0.4, seed=3)
    assert torch.equal(train, again[0]) and torch.equal(held, again[1])


def test_sets_reuse_given_adversarial_images_and_summary_counts_the_held_out_rows(case):
    model, images, labels = case
    attack = PGD(0.05, 0.02, 2, seed=0)
    made = representation_probes.representation_sets(model, images, labels, attack)
    adv = attack(model, images, labels)
    given = representation_probes.representation_sets(model, images, labels, attack, adversarial=adv)
    assert torch.equal(made["adv"]["z_s"], given["adv"]["z_s"])
    with pytest.raises(ValueError, match="one adversarial image per image"):
        representation_probes.representation_sets(model, images, labels, attack, adversarial=adv[:5])
    rows = representation_probes.disentanglement_summary(given, labels)
    assert rows[0]["n_label"] == N // 2                     # 40 pairs held out
    assert all(r[f"domain_acc_{h}_lo"] <= r[f"domain_acc_{h}"] <= r[f"domain_acc_{h}_hi"]
               for r in rows for h in ("linear", "mlp"))


def test_classifier_penultimate_is_c_s_before_its_last_layer():
    torch.manual_seed(0)
    c_s = nn.Sequential(nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
    holder = nn.Module()
    holder.c_s = c_s
    z_s = torch.randn(5, 6)
    assert torch.equal(representation_probes.classifier_penultimate(holder, z_s), c_s[:2](z_s))
    holder.c_s = nn.Linear(6, 2)                         # one layer: z_s itself
    assert torch.equal(representation_probes.classifier_penultimate(holder, z_s), z_s)
