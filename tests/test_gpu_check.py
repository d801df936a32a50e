"""benchmarks/gpu_check.py at tiny size on the CPU: the script a lent GPU runs must not rot between loans.

The full tiny check runs once in process (every row, both precisions, the evaluator, the CAM); the failure paths
(an injected NaN, an injected out-of-memory error, the budget guard) run on one row or none; the budget guard
also through the command line, for the process's exit status.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
TINY = ["--size", "tiny", "--device", "cpu"]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


gpu_check = _load()


def _run(tmp_path, capsys, *args: str) -> tuple[int, str, dict]:
    out = tmp_path / "check.json"
    code = gpu_check.main([*TINY, "--json", str(out), *args])
    return code, capsys.readouterr().out, json.loads(out.read_text())


def _table_rows(stdout: str) -> list[list[str]]:
    """The table's data rows, split on runs of two or more spaces."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("item "))
    rows = []
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith(("note:", "total ")):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = gpu_check.main([*TINY, "--json", str(out)])
    return code, buffer.getvalue(), json.loads(out.read_text())


def test_tiny_check_has_every_row_with_finite_losses_and_positive_ratios(full_run):
    code, stdout, record = full_run
    assert code == 0, stdout
    assert "RESULT: OK" in stdout and record["ok"] and record["failures"] == [] and record["skipped"] == []
    lines = record["lines"]
    bf16, _ = gpu_check.bf16_available(torch.device("cpu"))
    expected = [(r.name, p) for r in gpu_check.ROWS for p in (("bf16", "fp32") if bf16 else ("fp32",))]
    assert [(x["item"], x["prec"]) for x in lines[:-2]] == expected
    assert [x["item"] for x in lines[-2:]] == ["evaluator", "cam"]
    assert all(x["status"] == "ok" for x in lines)
    for x in lines[:-2]:
        d = x["details"]
        assert d["ratio"] > 0 and d["workbench"]["images_per_s"] > 0 and d["bare"]["images_per_s"] > 0
        assert math.isclose(d["ratio"], d["workbench"]["images_per_s"] / d["bare"]["images_per_s"])
        assert len(d["workbench"]["losses"]) == gpu_check.WARMUP
        assert all(math.isfinite(v) for step in d["workbench"]["losses"] for v in step.values())
        assert d["p"] == d["profile_p"] == 4 and d["k"] == 2  # TINY_SHAPE, no batch reduction
        images = 2 * 4 * 2 if x["item"] != "sd2reid" else 3 * 4 * 2  # two VI modalities, three MM ones
        assert x["images"] == str(images)
        assert x["details"]["workbench"]["peak_gib"] is None  # no CUDA peak on the CPU
    # the same weights and batch in both precisions: the first loss agrees to bf16 accuracy
    first = {(x["item"], x["prec"]): sum(x["details"]["workbench"]["losses"][0].values()) for x in lines[:-2]}
    for row in gpu_check.ROWS if bf16 else ():
        assert first[(row.name, "bf16")] == pytest.approx(first[(row.name, "fp32")], rel=0.05)
    evaluator, cam = lines[-2]["details"], lines[-1]["details"]
    assert evaluator["max_abs_diff"] <= gpu_check.EVAL_TOLERANCE and 0 < evaluator["mAP"] <= 1
    assert cam["maps"] == gpu_check.CAM_GALLERY * 3 and cam["bad"] == []
    # the printed table carries the same rows, in order, with the status last
    table = _table_rows(stdout)
    assert all(len(r) == len(gpu_check.COLUMNS) for r in table)
    assert [(r[0], r[5]) for r in table[:-2]] == expected
    assert [r[0] for r in table[-2:]] == ["evaluator", "cam"] and all(r[-1] == "ok" for r in table)
    assert "total " in stdout and "note: weights: random init" in stdout


def test_injected_nan_fails_that_row_names_it_and_the_rest_still_runs(tmp_path, capsys):
    code, stdout, record = _run(tmp_path, capsys, "--only", "baseline", "evaluator", "--precisions", "fp32",
                                "--inject", "baseline:nan")
    assert code == 1
    assert "RESULT: FAILED" in stdout and not record["ok"]
    assert len(record["failures"]) == 1 and record["failures"][0].startswith("baseline fp32: non-finite loss at step 1")
    assert "FAILED: baseline fp32: non-finite loss" in stdout
    status = {x["item"]: x["status"] for x in record["lines"]}
    assert status == {"baseline": "FAIL", "evaluator": "ok"}


def test_a_batch_that_does_not_fit_is_halved_and_reported(tmp_path, capsys):
    code, stdout, record = _run(tmp_path, capsys, "--only", "sd2reid", "--precisions", "fp32",
                                "--inject", "sd2reid:oom")
    assert code == 0, stdout
    (line,) = record["lines"]
    assert line["batch"] == "P2xK2x3" and line["images"] == "12" and line["status"] == "ok"
    assert line["details"]["p"] == 2 and line["details"]["profile_p"] == 4
    assert "P4xK2x3 does not fit" in stdout and "measured at P2xK2x3, the largest batch that fits" in stdout


def test_budget_guard_skips_with_a_clear_line_and_fails_unless_allowed(tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(SCRIPT), *TINY, "--budget-s", "0", "--only", "baseline", "cam",
           "--precisions", "fp32"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "SKIPPED: budget: baseline fp32" in out.stdout and "SKIPPED: budget: cam" in out.stdout
    assert "RESULT: FAILED" in out.stdout
    code, stdout, record = _run(tmp_path, capsys, "--budget-s", "0", "--allow-skip")
    assert code == 0, stdout
    assert "(allowed)" in stdout and "RESULT: OK" in stdout
    assert record["skipped"] == [f"{r.name} {p}" for r in gpu_check.ROWS for p in ("bf16", "fp32")] + ["evaluator",
                                                                                                      "cam"]
    assert all(x["status"] == "SKIPPED: budget" for x in record["lines"])


def test_bad_injection_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main([*TINY, "--inject", "baseline:boom"])
    assert exc.value.code == 2 and "expected ROW:nan or ROW:oom" in capsys.readouterr().err
