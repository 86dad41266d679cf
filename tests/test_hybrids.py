"""Hybrid representations on a tiny DRRDN whose reconstructor is made an exact identity on
z (d_s = identity on z >= 0, r reads z_s back): the hybrids are z or z', and the accuracy
on r(z_s, z_i) is the classifier's accuracy on z."""
import pytest
import torch
from torch import nn

from drrdn_lib.drrdn import DRRDN
from drrdn_lib.hybrids import HYBRIDS, finetune_on_hybrids, hybrid_representations, hybrid_table
from drrdn_lib.models import build_model
from drrdn_lib.torch_utils import predict_labels
from tiny import N_CLASSES, SIDE, synthetic

D = 12


def _classifier():
    return nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, N_CLASSES))


def _identity_drrdn():
    """A DRRDN with r([z_s, z_i]) == z exactly: z = ReLU(.) >= 0, d_s = ReLU(I z) = z,
    r = [I, 0] (reads z_s, ignores z_i)."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, D), nn.ReLU())
    model = DRRDN(encoder, D, _classifier(), N_CLASSES, mine_hidden=8, rec_hidden=8)
    with torch.no_grad():
        model.d_s[0].weight.copy_(torch.eye(D))
        model.d_s[0].bias.zero_()
        model.r = nn.Linear(2 * D, D)
        model.r.weight.copy_(torch.cat([torch.eye(D), torch.zeros(D, D)], 1))
        model.r.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x, y = synthetic(300, g)
    x_adv = (x + 0.1 * torch.randn(x.shape, generator=g).sign()).clamp(0, 1)
    return x, x_adv, y


def test_identity_reconstructor_gives_z_and_z_adv(data):
    x, x_adv, _ = data
    model = _identity_drrdn()
    model.train()
    hybrids = hybrid_representations(model, x, x_adv, batch_size=64)
    assert model.training                                    # mode restored
    with torch.no_grad():
        z, z_adv = model.g(x), model.g(x_adv)
    assert list(hybrids) == list(HYBRIDS)
    assert all(h.shape == (len(x), D) for h in hybrids.values())
    torch.testing.assert_close(hybrids["r(z_s, z_i)"], z, rtol=0, atol=1e-6)
    torch.testing.assert_close(hybrids["r(z_s, z'_i)"], z, rtol=0, atol=1e-6)
    torch.testing.assert_close(hybrids["r(z'_s, z_i)"], z_adv, rtol=0, atol=1e-6)
    torch.testing.assert_close(hybrids["r(z'_s, z'_i)"], z_adv, rtol=0, atol=1e-6)
    assert not torch.allclose(z, z_adv)


def test_accuracy_on_r_zs_zi_is_the_accuracy_on_z(data):
    x, x_adv, y = data
    model = _identity_drrdn()
    train = hybrid_representations(model, x[:200], x_adv[:200])
    test = hybrid_representations(model, x[200:], x_adv[200:])
    with torch.no_grad():
        z_test = model.g(x[200:])
    classifier = _classifier()
    original = [p.detach().clone() for p in classifier.parameters()]
    untuned = finetune_on_hybrids(classifier, train, y[:200], test, y[200:], epochs=0)
    clean = int((predict_labels(classifier, z_test) == y[200:]).sum())
    assert untuned.after["r(z_s, z_i)"].n_correct == clean
    assert untuned.before["r(z_s, z_i)"].n_correct == clean

    tuned = finetune_on_hybrids(classifier, train, y[:200], test, y[200:], epochs=20, lr=1e-2)
    on_z = int((predict_labels(tuned.classifier, z_test) == y[200:]).sum())
    assert tuned.after["r(z_s, z_i)"].n_correct == on_z
    right_on_z = (predict_labels(tuned.classifier, z_test) == y[200:]).numpy()
    assert (tuned.right["r(z_s, z_i)"] == right_on_z).all()   # per image, for the paired tests
    assert all(int(tuned.right[k].sum()) == tuned.after[k].n_correct for k in HYBRIDS)
    assert on_z > clean                                    # fine-tuning learnt something
    assert all(torch.equal(a, b) for a, b in zip(original, classifier.parameters()))
    again = finetune_on_hybrids(classifier, train, y[:200], test, y[200:], epochs=20, lr=1e-2)
    assert again.after == tuned.after                      # seeded
    frame = tuned.to_frame()
    assert list(frame.index) == list(HYBRIDS) and frame["n"].eq(100).all()


def test_hybrid_table_uses_the_standard_classifier():
    """End to end with SmallCNN's split: the reconstructor's width is the classifier's."""
    torch.manual_seed(0)
    standard = build_model("smallcnn", in_channels=1, image_size=16)
    encoder, width, classifier = build_model("smallcnn", in_channels=1,
                                             image_size=16).encoder_and_classifier()
    drrdn = DRRDN(encoder, width, classifier, 10, mine_hidden=8, rec_hidden=8)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (40,), generator=g)
    x_adv = (x + 0.05).clamp(0, 1)
    result = hybrid_table(drrdn, standard, (x[:20], x_adv[:20], y[:20]),
                          (x[20:], x_adv[20:], y[20:]), epochs=1)
    assert set(result.after) == set(HYBRIDS) and all(c.n == 20 for c in result.after.values())
    with pytest.raises(ValueError, match="takes 1024 inputs but the DRRDN.s reconstructor outputs z of width 64"):
        hybrid_table(drrdn, build_model("smallcnn", in_channels=1, image_size=28),
                     (x, x_adv, y), (x, x_adv, y))


def test_bad_inputs_are_named(data):
    x, x_adv, y = data
    model = _identity_drrdn()
    with pytest.raises(ValueError, match="need a DRRDN"):
        hybrid_representations(nn.Linear(3, 3), x, x_adv)
    with pytest.raises(ValueError, match="row i of x_adv"):
        hybrid_representations(model, x, x_adv[:-1])
    with pytest.raises(ValueError, match="x_adv"):
        hybrid_representations(model, x, x_adv + 2)
    sets = hybrid_representations(model, x[:50], x_adv[:50])
    with pytest.raises(ValueError, match="not in train"):
        finetune_on_hybrids(_classifier(), sets, y[:50], sets, y[:50], types=("r(z, z)",))
    with pytest.raises(ValueError, match="rows but there are"):
        finetune_on_hybrids(_classifier(), sets, y[:40], sets, y[:50])
    with pytest.raises(ValueError, match="epochs"):
        finetune_on_hybrids(_classifier(), sets, y[:50], sets, y[:50], epochs=-1)
