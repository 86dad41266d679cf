"""The evaluation cache: equal inputs hit, any change misses, a killed run resumes."""
import torch
from torch import nn

from drrdn_lib.eval_cache import cached, fingerprint
from drrdn_lib.attacks import AttackBudget
from drrdn_lib.transfer import transfer_matrix


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_fingerprint_follows_weights_data_and_settings():
    a, x = _net(0), torch.rand(5, 1, 4, 4)
    assert fingerprint(a, x, {"eps": 0.3}) == fingerprint(_net(0), x.clone(), {"eps": 0.3})
    assert fingerprint(a, x, {"eps": 0.3}) != fingerprint(_net(1), x, {"eps": 0.3})
    assert fingerprint(a, x, {"eps": 0.3}) != fingerprint(a, x, {"eps": 0.2})
    y = x.clone()
    y[0, 0, 0, 0] += 1e-6
    assert fingerprint(a, x) != fingerprint(a, y)


def test_cached_computes_once_and_only_with_a_folder(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": torch.arange(3)}
    first = cached(tmp_path, "kind", (1, "a"), compute)
    second = cached(tmp_path, "kind", (1, "a"), compute)
    assert len(calls) == 1 and torch.equal(first["value"], second["value"])
    cached(tmp_path, "kind", (2, "a"), compute)
    cached(None, "kind", (1, "a"), compute)
    assert len(calls) == 3 and len(list(tmp_path.glob("kind-*.pt"))) == 2


def test_transfer_matrix_from_cache_equals_a_fresh_one(tmp_path, monkeypatch):
    models = {"a": _net(0), "b": _net(1)}
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    budget = AttackBudget(0.3, 0.1, 3)
    fresh = transfer_matrix(models, models, x, y, budget, cache_dir=tmp_path)
    from drrdn_lib import transfer
    monkeypatch.setattr(transfer, "craft_transfer_examples", lambda *a, **k: 1 / 0)  # must not run
    again = transfer_matrix(models, models, x, y, budget, cache_dir=tmp_path)
    assert again.cells == fresh.cells


def test_a_partial_entry_gets_its_state_file_and_it_is_removed_once_stored(tmp_path):
    seen = []

    def compute(state):
        seen.append(state)
        state.write_bytes(b"progress")
        return 7
    assert cached(tmp_path, "evaluate", (1,), compute, partial=True) == 7
    assert seen[0].name.startswith("evaluate-") and seen[0].name.endswith(".partial.pt")
    assert not seen[0].exists() and len(list(tmp_path.glob("evaluate-*.pt"))) == 1
    assert cached(None, "evaluate", (1,), lambda state: state, partial=True) is None


class _RunsCodeWhenLoaded:
    """A record that writes a marker file when unpickled (as an attacker's would run code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_record_that_would_run_code_is_refused_by_every_reader(tmp_path):
    """Cache entries and evaluate()'s resume files are read with weights_only=True and an
    allow-list of the library's record classes: a pickle that calls a function is refused
    before it runs, with a message that names the file."""
    import pytest

    from drrdn_lib.eval_cache import UnsafeRecordError, safe_load
    from drrdn_lib.evaluate import evaluate
    from drrdn_lib.attacks import PGD

    marker, record = tmp_path / "marker", tmp_path / "evaluate-0123456789abcdef.pt"
    torch.save({"value": _RunsCodeWhenLoaded(marker)}, record)
    torch.load(record, weights_only=False)  # the record is really malicious
    assert marker.read_text() == "ran"
    marker.unlink()
    with pytest.raises(UnsafeRecordError, match=f"{record} is not a record this library wrote"):
        safe_load(record)
    net, x, y = _net(0), torch.rand(4, 1, 4, 4), torch.randint(0, 3, (4,))
    with pytest.raises(UnsafeRecordError):
        evaluate(net, x, y, {"pgd": PGD(0.1, 0.05, 2, seed=0)}, checks="none", progress=False,
                 resume_file=record)
    key = (1, "a")
    from drrdn_lib.eval_cache import fingerprint
    record.rename(tmp_path / f"kind-{fingerprint(*key)}.pt")
    with pytest.raises(UnsafeRecordError):
        cached(tmp_path, "kind", key, lambda: 1)
    assert not marker.exists()
