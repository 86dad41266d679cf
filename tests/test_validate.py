"""validate: every check names the bad value and says what to do."""
import math

import numpy as np
import pytest
import torch

from drrdn_lib import validate as v


@pytest.mark.parametrize("value, ok", [(3, True), (np.int64(3), True), (3.0, False), (True, False),
                                       (np.bool_(True), False), ("3", False)])
def test_is_int(value, ok):
    assert v.is_int(value) is ok


@pytest.mark.parametrize("value, ok", [(0.5, True), (2, True), (np.float32(0.5), True), (math.nan, False),
                                       (math.inf, False), (np.float64("nan"), False), (False, False),
                                       (None, False)])
def test_is_number(value, ok):
    assert v.is_number(value) is ok


def test_check_int_and_check_number_messages():
    assert v.check_int("steps", 5) == 5 and v.check_int("n", 0, minimum=0) == 0
    assert type(v.check_int("steps", np.int64(5))) is int
    with pytest.raises(ValueError, match=r"^steps=0 must be an integer >= 1\.$"):
        v.check_int("steps", 0)
    with pytest.raises(ValueError, match=r"steps=2\.0 must be an integer"):
        v.check_int("steps", 2.0)
    assert v.check_number("p", 1, 0.0, 1.0) == 1.0 and isinstance(v.check_number("p", 1, 0, 1), float)
    with pytest.raises(ValueError, match=r"^p=1\.0 must be a finite number in \(0, 1\) \(e\.g\. 0\.5\)\.$"):
        v.check_number("p", 1.0, 0.0, 1.0, low_open=True, high_open=True, hint="e.g. 0.5")
    with pytest.raises(ValueError, match=r"lr=0 must be a finite number > 0"):
        v.check_number("lr", 0, 0.0, low_open=True)
    with pytest.raises(ValueError, match=r"x=nan must be a finite number <= 3"):
        v.check_number("x", math.nan, high=3)
    with pytest.raises(ValueError, match=r"^x=True must be a finite number\.$"):
        v.check_number("x", True)


@pytest.mark.parametrize("images, kw, match", [
    (torch.rand(2, 28, 28, 1), {}, r"images of shape \(2, 28, 28, 1\) look NHWC.*x\.permute\(0, 3, 1, 2\)"),
    (torch.rand(2, 32, 32, 3), {}, r"look NHWC"),
    (torch.rand(2, 3, 4, 4).double(), {}, r"float32 .* got torch\.float64; convert with \.float\(\)\.$"),
    (torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8), {}, r"convert with \.float\(\) / 255"),
    (torch.full((2, 3, 4, 4), 1.5), {}, r"images have values in \[1\.5, 1\.5\], outside the allowed range \[0\.0, 1\.0\]"),
    (torch.full((3, 1, 2, 2), math.nan), {}, r"images hold 12 NaN/inf value\(s\) \(first in example 0\)"),
    (torch.tensor([[0.0, math.inf]]), {"bounds": None}, r"hold 1 NaN/inf value\(s\) \(first in example 0\)"),
    ([[0.5]], {}, r"must be a torch tensor"),
])
def test_check_images_says_what_to_do(images, kw, match):
    with pytest.raises(ValueError, match=match):
        v.check_images(images, **kw)


def test_check_images_accepts_valid_input():
    v.check_images(torch.rand(2, 3, 4, 4))
    v.check_images(torch.rand(2, 1, 28, 28))
    v.check_images(torch.randn(5, 7) * 10, bounds=None)        # features
    v.check_images(torch.rand(0, 3, 4, 4))
    v.check_images(torch.rand(2, 3, 8, 8).to(memory_format=torch.channels_last))  # NCHW, strided NHWC


@pytest.mark.parametrize("labels, kw, match", [
    (torch.zeros(3, dtype=torch.int32), {}, r"got torch\.int32; convert with \.long\(\)"),
    (torch.zeros(3), {}, r"got torch\.float32"),
    (torch.zeros(3, 1, dtype=torch.int64), {}, r"shape \(N,\).* got shape \(3, 1\)"),
    (torch.zeros(3, dtype=torch.int64), {"n": 4}, r"shape \(4,\)"),
    (torch.tensor([0, 5]), {"num_classes": 5}, r"labels in \[0, 5\] are outside the allowed range \[0, 4\]"),
    (torch.tensor([-2, 1]), {}, r"include negative values"),
])
def test_check_labels_says_what_to_do(labels, kw, match):
    with pytest.raises(ValueError, match=match):
        v.check_labels(labels, **kw)


def test_check_logits():
    v.check_logits(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    probs = torch.softmax(torch.randn(4, 3), 1)
    with pytest.raises(ValueError, match=r"remove the final softmax"):
        v.check_logits(probs)
    v.check_logits(probs, probabilities_ok=True)
    with pytest.raises(ValueError, match=r"NaN/inf logits for 1 of 4 examples \(first: 2\)"):
        v.check_logits(torch.randn(4, 3).index_fill(0, torch.tensor([2]), math.inf))
    with pytest.raises(ValueError, match=r"\(B, num_classes\), got \(4,\)"):
        v.check_logits(torch.randn(4))
    with pytest.raises(ValueError, match=r"outside the allowed range \[0, 2\]"):
        v.check_logits(torch.randn(2, 3), torch.tensor([0, 3]))


def test_check_in_ball():
    x = torch.rand(3, 1, 4, 4) * 0.5
    v.check_in_ball(x + 0.1, x, 0.1)
    with pytest.raises(ValueError, match=r"outside the Linf eps-ball: distance up to 0\.2 > eps 0\.1 "
                                         r"for 1 of 3 examples"):
        v.check_in_ball(x + torch.tensor([0.0, 0.2, 0.1])[:, None, None, None], x, 0.1)
    v.check_in_ball(x + 0.1, x, 0.4, "L2")                    # ||0.1 * ones(16)||_2 = 0.4
    with pytest.raises(ValueError, match=r"L2 eps-ball"):
        v.check_in_ball(x + 0.1, x, 0.39, "L2")
    with pytest.raises(ValueError, match=r"norm='L1'"):
        v.check_in_ball(x, x, 0.1, "L1")


def test_check_features_and_bool_vector():
    z = v.check_features(torch.ones(3, 2, dtype=torch.float64, requires_grad=True), "z")
    assert z.dtype == torch.float32 and not z.requires_grad
    with pytest.raises(ValueError, match=r"z must be 2-D"):
        v.check_features(torch.ones(3), "z")
    assert v.check_bool_vector([1, 0, 1], "ok").tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"outside \{0, 1\}"):
        v.check_bool_vector([2, 0], "ok")


def test_deep_errors_are_said_where_they_start(tmp_path, monkeypatch):
    """A missing channel axis, a bad seed, an output folder that is a file and a full disk
    each name what is wrong and what to do, not numpy's or the OS's words from deep inside."""
    import errno
    import os

    from drrdn_lib import files, models, results
    from drrdn_lib.data import load_dataset
    from drrdn_lib.data_files import DataError
    from drrdn_lib.toy import sample_toy
    from drrdn_lib.validate import check_images

    with pytest.raises(ValueError, match=r"\(5, 28, 28\) have no channel axis.*x.unsqueeze\(1\)"):
        check_images(torch.rand(5, 28, 28))
    with pytest.raises(ValueError, match=r"got shape \(5, 28, 28\).*x.unsqueeze\(1\)"):
        models.build_model("smallcnn")(torch.rand(5, 28, 28))
    with pytest.raises(DataError, match=r"seed=-1 must be an integer >= 0 \(e.g. 0, 1, 2\)"):
        load_dataset("toy", "train", limit=10, seed=-1)
    with pytest.raises(ValueError, match=r"seed=2.5 must be an integer >= 0"):
        sample_toy(10, seed=2.5)
    from drrdn_lib.train_config import ConfigError, TrainConfig
    with pytest.raises(ConfigError, match=r"seed=4294967296 must be an integer >= 0 and <= 4294967295"):
        TrainConfig(seed=2 ** 32)
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(files.WriteError, match=f"{blocker} is a file, not a folder; move that file"):
        results.save_metrics(blocker / "run", {"a": 1})
    with pytest.raises(files.WriteError, match="is a file, not a folder"):
        results.run_dir("x", blocker)
    path = files.write_json_atomic(tmp_path / "m.json", {"old": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(files.WriteError, match=r"cannot write .*m.json: the disk is full: free space"):
        files.write_json_atomic(path, {"new": 1})
    monkeypatch.undo()
    assert path.read_text() == '{\n  "old": 1\n}\n'
