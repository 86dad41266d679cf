"""run_notebook's command line and notebook_params: bad parameters stop before anything runs."""
import json
from pathlib import Path

import nbformat
import papermill
import pytest

from drrdn_lib import notebook_params, run_notebook
from drrdn_lib.notebook_params import ParameterError, check_parameters

PARAMETERS_CELL = """epochs = 4
methods = ["standard", "pgd_at"]
lr = 0.05
augment = False
dataset = "mnist5k"
model = None  # None: the protocol's
eps = 8 / 255
hyper = {"beta": 6.0}
out_dir = None"""


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    """A notebook with a typical parameters cell; papermill must never be asked to run it."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(PARAMETERS_CELL)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(epochs)")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)

    def must_not_run(*args, **kwargs):
        raise AssertionError("papermill was asked to execute the notebook")
    monkeypatch.setattr(papermill, "execute_notebook", must_not_run)
    return path


def _main(notebook, tmp_path, capsys, *args) -> tuple[int, str]:
    code = run_notebook.main([str(arg) for arg in (notebook, tmp_path / "out", *args)])
    return code, capsys.readouterr().err


def test_the_parameters_cell_is_read_with_types(notebook):
    declared = notebook_params.declared_parameters(notebook)
    assert list(declared) == ["epochs", "methods", "lr", "augment", "dataset", "model", "eps",
                              "hyper", "out_dir"]
    kinds = {name: d.kind() for name, d in declared.items()}
    assert kinds == {"epochs": int, "methods": list, "lr": float, "augment": bool,
                     "dataset": str, "model": None, "eps": None, "hyper": dict, "out_dir": None}


def test_a_misspelt_name_fails_before_running_and_suggests_the_name(notebook, tmp_path, capsys):
    code, err = _main(notebook, tmp_path, capsys, "-p", "epochz", "10")
    assert code == 2
    assert "'epochz' is not a parameter of nb.ipynb; did you mean epochs?" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,text,message", [
    ("epochs", "four", "'epochs' must be int like its default (4), got str 'four'; give a whole number"),
    ("epochs", "2.5", "'epochs' must be int like its default (4), got float 2.5"),
    ("epochs", "true", "'epochs' must be int like its default (4), got bool True"),
    ("augment", "1", "'augment' must be bool like its default (False), got int 1; give true or false"),
    ("lr", "fast", "'lr' must be float like its default (0.05), got str 'fast'"),
    ("dataset", "10", "'dataset' must be str like its default (\"mnist5k\"), got int 10; give a string"),
    ("methods", "pgd_at", "'methods' must be list like its default ([\"standard\", \"pgd_at\"]), got str "
                          "'pgd_at'; give a YAML list, e.g. ['pgd_at'] (quoted on a command line: "
                          "-p methods '[pgd_at]')"),
    ("hyper", "[1]", "'hyper' must be dict like its default"),
])
def test_a_value_of_the_wrong_type_fails_before_running(notebook, tmp_path, capsys, name, text,
                                                        message):
    code, err = _main(notebook, tmp_path, capsys, "-p", name, text)
    assert code == 2 and message in err, err


def test_every_problem_is_listed_in_one_message(notebook, tmp_path, capsys):
    code, err = _main(notebook, tmp_path, capsys, "-p", "epochs", "four", "-p", "methods", "pgd_at",
                      "-p", "epochz", "1")
    assert code == 2 and err.count("nb.ipynb:") == 3


def test_good_values_are_passed_on_parsed_as_yaml(notebook, tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_execute(nb, out_dir, params):
        seen.update(params)
        out_dir.mkdir(parents=True)
        (out_dir / "nb.ipynb").write_text("{}")
        return out_dir / "nb.ipynb"
    monkeypatch.setattr(run_notebook, "execute", fake_execute)
    params = tmp_path / "params.yaml"
    params.write_text("epochs: 2\ndataset: mnist\n")
    code, _ = _main(notebook, tmp_path, capsys, "-f", params, "-p", "methods", "[pgd_at, trades]",
                    "-p", "lr", "1", "-p", "model", "wrn34_10", "-p", "eps", "0.3",
                    "-p", "epochs", "null", "-p", "hyper", "{beta: 1.0}")
    assert code == 0
    assert seen == {"epochs": None, "dataset": "mnist", "methods": ["pgd_at", "trades"], "lr": 1,
                    "model": "wrn34_10", "eps": 0.3, "hyper": {"beta": 1.0}}


@pytest.mark.parametrize("args,message", [
    (["-p", "out_dir", "x"], "out_dir is the second argument"),
    (["-p", "epochs", "[1"], "-p epochs '[1' is not valid YAML"),
    (["-f", "missing.yaml"], "no parameters file at missing.yaml"),
])
def test_bad_command_lines_are_refused(notebook, tmp_path, capsys, args, message):
    code, err = _main(notebook, tmp_path, capsys, *args)
    assert code == 2 and message in err


def test_a_parameters_file_that_is_not_a_mapping_is_refused(notebook, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("- epochs\n")
    code, err = _main(notebook, tmp_path, capsys, "-f", params)
    assert code == 2 and "must be a YAML mapping" in err


def test_execute_checks_parameters_before_papermill(notebook, tmp_path):
    with pytest.raises(ParameterError, match="'methods' must be list"):
        run_notebook.execute(notebook, tmp_path / "out", {"methods": "pgd_at"})


def test_an_output_folder_in_the_repository_is_passed_relative(notebook, monkeypatch):
    """The injected parameters of a committed report must not record this machine's path."""
    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, parameters, **kw: seen.update(parameters))
    folder = run_notebook.REPO_ROOT / "results" / "test_relative_out_dir"
    run_notebook.execute(notebook, folder, {"epochs": 2}, progress=False)
    assert seen == {"epochs": 2, "out_dir": "results/test_relative_out_dir"}
    folder.rmdir()


def test_the_metrics_keep_the_cells_wall_time_that_the_committed_notebook_loses(notebook, tmp_path,
                                                                               monkeypatch):
    def fake_papermill(source, output, parameters, **kw):  # what papermill writes: timings
        nb = nbformat.read(source, as_version=4)
        nb.metadata["papermill"] = {"duration": 12.34}
        for cell, seconds in zip(nb.cells, (0.2, 11.96)):
            cell.metadata["papermill"] = {"duration": seconds}
        nbformat.write(nb, output)
        (Path(output).parent / "metrics.json").write_text('{"provenance": {"commit": "abc"}, "x": 1}')
    monkeypatch.setattr(papermill, "execute_notebook", fake_papermill)
    output = run_notebook.execute(notebook, tmp_path / "out", progress=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["x"] == 1 and metrics["provenance"]["commit"] == "abc"
    assert metrics["provenance"]["wall_seconds"] == {"notebook": 12.3, "cells": {"2: print(epochs)": 12.0}}
    executed = nbformat.read(output, as_version=4)
    assert "papermill" not in executed.metadata
    assert not any("papermill" in cell.metadata for cell in executed.cells)


def test_an_edited_notebook_is_read_again(notebook):
    check_parameters(notebook, {"epochs": 3})
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("epochs = 4", "epochs = 'four'")
    nbformat.write(nb, notebook)
    with pytest.raises(ParameterError, match="'epochs' must be str"):
        check_parameters(notebook, {"epochs": 3})


def test_repo_relative_names_a_folder_inside_the_repository_relative_and_others_absolute(tmp_path):
    from drrdn_lib.results import REPO_ROOT, repo_relative
    assert repo_relative(REPO_ROOT / "results" / "x" / ".." / "y") == Path("results/y")
    assert repo_relative(tmp_path) == tmp_path.resolve()


NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter_the_notebooks_parameters_cell_assigns(path):
    """papermill's parser skips a line it cannot read (an '=' inside a comment did it), and
    that parameter then cannot be set from a parameter file."""
    import ast

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert set(notebook_params.declared_parameters(path)) == assigned


def test_a_failing_cell_or_an_unwritable_folder_exits_non_zero_in_one_line(notebook, tmp_path,
                                                                          capsys, monkeypatch):
    """The quickstart with a mistyped zoo_dir used to exit 0; a notebook's error now ends
    the command with status 1 and the error in one line, a folder that is a file with 2."""
    from papermill.exceptions import PapermillExecutionError

    def failing(source, output, parameters, **kw):
        raise PapermillExecutionError(3, 4, "zoo.available(zoo_dir)", "ZooError",
                                      "the zoo folder /nowhere (zoo_dir) does not exist", [])
    monkeypatch.setattr(papermill, "execute_notebook", failing)
    code, err = _main(notebook, tmp_path, capsys, "-p", "epochs", "2")
    assert code == 1
    assert "the notebook failed in cell In[4]: ZooError: the zoo folder /nowhere" in err
    (tmp_path / "file").write_text("x")
    code = run_notebook.main([str(notebook), str(tmp_path / "file" / "out")])
    assert code == 2 and "is a file, not a folder" in capsys.readouterr().err
