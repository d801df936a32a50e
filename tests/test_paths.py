"""One resolver for the project's runs/ and outputs/: the same folders from any working directory (a JupyterLab
kernel starts in notebooks/), overridable by WORKBENCH_HOME; git ignores what a notebook could leave in notebooks/."""

import subprocess
from pathlib import Path

import matplotlib
import pytest

from workbench import utils, viz

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parent.parent


def test_project_dir_is_the_repository_from_any_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBENCH_HOME", raising=False)
    for cwd in (REPO, REPO / "notebooks", tmp_path):
        monkeypatch.chdir(cwd)
        assert utils.project_dir() == REPO
        assert utils.runs_dir() == REPO / "runs" and utils.runs_dir("runs") == REPO / "runs"
        assert utils.outputs_dir() == REPO / "outputs"


def test_workbench_home_and_absolute_paths_win(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.chdir(REPO / "notebooks")
    assert utils.runs_dir() == tmp_path / "runs"
    assert utils.runs_dir("elsewhere/runs") == tmp_path / "elsewhere" / "runs"  # relative: from the project
    assert utils.runs_dir(tmp_path / "abs") == tmp_path / "abs"
    assert utils.outputs_dir() == tmp_path / "outputs"


def test_savefig_lands_in_the_project_outputs_not_the_working_directory(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "project"))
    monkeypatch.delenv("WORKBENCH_FIGURES", raising=False)
    monkeypatch.chdir(tmp_path)
    fig, _ = plt.subplots()
    path = viz.savefig(fig, "x y")
    plt.close(fig)
    assert path == tmp_path / "project" / "outputs" / "figures" / "x_y.png" and path.is_file()
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("path", ["notebooks/runs/x/config.json", "notebooks/outputs/figures/a.png",
                                  "runs/x/config.json", "outputs/records.json"])
def test_git_ignores_run_and_output_folders(path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    assert result.returncode == 0, f"{path} is not ignored by .gitignore"
