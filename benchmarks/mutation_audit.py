"""Mutation audit (issue 13): does the test suite fail on plausible bugs, area by area?

Each mutant is one small textual change to one library file (a dropped term, a wrong sign, an off-by-one, a wrong
default, a wrong view). For each mutant the script writes it into a *copy* of the repository, runs the test files
of the mutant's area with `pytest -x -q` under a timeout, and restores the file (in a `finally`, so Ctrl-C restores
it too). A mutant is *killed* when the tests fail (or time out), *survives* when they pass. It is a measurement, not
a test: it takes minutes.

The copy holds the repository's tracked and untracked-but-not-ignored files (your uncommitted work included); the
live working tree is never written. `--tests-from REV` replaces the copy's `tests/` folder by the one of a commit,
to measure the tests as they were ("before") against today's library.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mutation_audit.py                       # all areas, current tests
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mutation_audit.py --tests-from 52a4d67  # tests of that commit
    .venv/bin/python benchmarks/mutation_audit.py --list                                  # the mutants, no run
    .venv/bin/python benchmarks/mutation_audit.py --areas cutswap,samplers --json out.json

Before mutating, each area's tests run once on the unmutated copy; an area whose tests already fail is reported
as "baseline fails" and its mutants are not counted (a failing suite would "kill" every mutant).

An area's tests are files or pytest node ids (`tests/test_x.py::test_name`). Those absent from the measured tests
(a file added after `--tests-from`'s commit) are left out of the run and listed; an area with none left has no
test, and each of its mutants survives.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    area: str
    path: str  # library file, relative to the repository root
    original: str  # must occur exactly once in the file
    mutated: str
    what: str  # the kind of bug, in words


# Test files run for each area (relative to the repository root).
AREA_TESTS: dict[str, tuple[str, ...]] = {
    "memory": ("tests/test_dakd.py",),
    "cutswap": ("tests/test_transforms.py",),
    "protocols": ("tests/test_metrics_protocols.py",),
    "hetero_center": ("tests/test_losses.py",),
    "samplers": ("tests/test_samplers.py",),
    "loaders": ("tests/test_loaders.py",),
    "synthetic": ("tests/test_synthetic.py",),
    "dakd_student": ("tests/test_dakd.py",),
    "profiling": ("tests/test_runs.py",),
    "sd2reid": ("tests/test_sd2reid.py",),
    "options_parser": ("tests/test_config.py",),
    "method_options": ("tests/test_cli.py", "tests/test_icre.py", "tests/test_dakd.py"),
    # issue 22 item 5 (helper audit): the run store, the selection and the evaluation store after the refactor
    "overwrite": ("tests/test_run_store.py", "tests/test_runs.py"),
    "selected_weights": ("tests/test_selected_weights.py", "tests/test_evaluate.py", "tests/test_runs.py",
                         "tests/test_train.py::test_fit_selects_on_validation_and_reports_test_separately"),
    "protocol_identity": ("tests/test_evaluate.py",
                          "tests/test_dashboard.py::test_runs_under_different_protocols_are_refused_with_the_reason"),
    "evaluation_store": ("tests/test_evaluate.py",),
    "standin_fingerprint": ("tests/test_standin_fingerprint.py", "tests/test_pretrain.py"),
    "train_log": ("tests/test_train_log.py", "tests/test_train.py::"
                  "test_a_resume_may_change_log_every_and_logs_what_an_uninterrupted_run_logs"),
}

MEM, DAKD = "workbench/losses/memory.py", "workbench/methods/dakd.py"
TF, PROT = "workbench/data/transforms.py", "workbench/metrics/protocols.py"
SAMP, REND = "workbench/data/samplers.py", "workbench/data/synthetic_render.py"
SD2, CONF = "workbench/methods/sd2reid.py", "workbench/config.py"
RUNS, TRAIN, EVAL = "workbench/runs.py", "workbench/train.py", "workbench/evaluate.py"
PRETRAIN = "workbench/pretrain.py"

MUTANTS: tuple[Mutant, ...] = (
    # --- the MCE teacher's memories (memory.py, DAKDTeacher)
    Mutant("memory", MEM, "views = [f_v, f_r] + ([f_ca] if f_ca is not None and self.ca is not None else [])",
           "views = [f_v, f_r]", "wrong views: the CA view does not feed the global memory"),
    Mutant("memory", DAKD, "self.memories.update(F.normalize(f_v, dim=1), F.normalize(f_r, dim=1),",
           "self.memories.update(f_v, F.normalize(f_r, dim=1),", "visible features not normalised before update"),
    Mutant("memory", MEM, "if cfg.kl_uses_online_memory else (lambda m: m.centers)",
           "if not cfg.kl_uses_online_memory else (lambda m: m.centers)", "KL reads the online rows by default"),
    Mutant("memory", MEM, '"sid": cfg.sid_weight * (memory_ce', '"sid": (memory_ce', "sid weight dropped"),
    Mutant("memory", MEM, 'terms["caid"] = cfg.sid_weight * cfg.caid_weight *', 'terms["caid"] = cfg.caid_weight *',
           "caid not scaled by sid_weight"),
    Mutant("memory", MEM, "return cls(ClassMemory(glob, cfg.global_momentum,",
           "return cls(ClassMemory(glob, cfg.modality_momentum,", "global memory with the modality momentum"),
    # --- CutSwap "intended"
    Mutant("cutswap", TF, "top, left = _randint(0, h_img - h, self.generator)",
           "top, left = _randint(0, h_img - h - 1, self.generator)", "box never reaches the bottom edge"),
    Mutant("cutswap", TF, "_randint(0, w_img - w, self.generator)\n",
           "_randint(0, w_img - w - 1, self.generator)\n", "box never reaches the right edge"),
    Mutant("cutswap", TF, "return _fill_channels(img, img[channel], top, left, h, w)",
           "return _fill_channels(img, img[0], top, left, h, w)", "always copies channel 0"),
    Mutant("cutswap", TF, "top, left = _randint(0, h_img - h, self.generator)",
           "top, left = _randint(1, h_img - h, self.generator)", "box never touches the top edge"),
    Mutant("cutswap", TF, "channel = _randint(0, 2, self.generator)", "channel = _randint(0, 1, self.generator)",
           "source channel never blue"),
    # --- batched protocol distances
    Mutant("protocols", PROT, "edges = np.cumsum([0] + [len(trials[t][1]) for t in batch])",
           "edges = np.cumsum([0] + [len(trials[t][0]) for t in batch])", "split by query size"),
    Mutant("protocols", PROT, "cols = len(trials[t][1])", "cols = len(query)", "batch bound by query size"),
    Mutant("protocols", PROT, "            width += cols\n", "            width = cols\n",
           "batch width not accumulated (products over the memory bound)"),
    Mutant("protocols", PROT, "if current and (width + cols) * len(query) > _BATCH_ELEMENTS:",
           "if current and (width + cols) * len(query) > 2 * _BATCH_ELEMENTS:", "memory bound doubled"),
    Mutant("protocols", PROT, '**{f"{k}_std": v for k, v in res.std.items()},',
           '**{f"{k}_std": v for k, v in res.mean.items()},', "directions table: std columns hold means"),
    # --- hetero-centre loss
    Mutant("hetero_center", "workbench/losses/center.py",
           'return per_id.sum() if reduction == "sum" else per_id.mean()',
           'return per_id.sum() if reduction == "sum" else per_id.sum() / ids.numel()',
           "mean over all identities, one-modality ones included"),
    Mutant("hetero_center", "workbench/losses/center.py", "both = (counts[0] > 0) & (counts[1] > 0)",
           "both = (counts[0] > 0) | (counts[1] > 0)", "identities in one modality kept"),
    Mutant("hetero_center", "workbench/losses/center.py", "per_id = (per_id - margin).clamp(min=0.0)",
           "per_id = (per_id + margin).clamp(min=0.0)", "margin sign"),
    Mutant("hetero_center", "workbench/losses/center.py", "centres.append(member @ feats / count.clamp(min=1.0)[:, None])",
           "centres.append(member @ feats / (count + 1.0)[:, None])", "centre divides by count + 1"),
    # --- samplers
    Mutant("samplers", SAMP, "            batches += self._one_pass_plan(rng)\n",
           "            batches += self._one_pass_plan(self._rng(epoch))\n", "extra passes repeat the first"),
    Mutant("samplers", SAMP, "            batches += self._one_pass_plan(rng)\n",
           "            batches += batches[: self.num_batches - len(batches)]\n", "extra passes copy earlier batches"),
    Mutant("samplers", SAMP, "return batches[: self.num_batches]", "return batches[: self.num_batches - 1]",
           "one batch short"),
    Mutant("samplers", SAMP, "range(0, len(idx) - self.k + 1, self.k)", "range(0, len(idx) - self.k, self.k)",
           "last full chunk dropped"),
    Mutant("samplers", SAMP, "np.random.SeedSequence([self.seed, int(epoch)])",
           "np.random.SeedSequence(self.seed + int(epoch))", "seed and epoch summed: seed 1 epoch 0 replays seed 0 epoch 1"),
    Mutant("samplers", SAMP, "np.random.SeedSequence([self.seed, int(epoch)])",
           "np.random.SeedSequence(self.seed ^ int(epoch))", "seed xor epoch: (seed, epoch) pairs collide"),
    # --- loaders
    Mutant("loaders", "workbench/data/sysu.py", "        verify_images(s for v in test_images.values() for s in v)\n",
           "", "SYSU test images not verified"),
    Mutant("loaders", "workbench/data/llcm.py", "        verify_images(s for v in ds.test_images.values() for s in v)\n",
           "", "LLCM test images not verified"),
    Mutant("loaders", "workbench/data/llcm.py", "            if cam not in cams:\n                continue\n", "",
           "LLCM camera folders outside the protocol read"),
    Mutant("loaders", "workbench/data/regdb.py", "        verify_images(test)\n", "", "RegDB test images not verified"),
    Mutant("loaders", "workbench/data/rgbnt.py", "        verify_images(train)\n        verify_images(test)\n",
           "        verify_images(train)\n", "RGBNT201 test images not verified"),
    # --- synthetic thermal physics
    Mutant("synthetic", REND, "surface = amb + (skin - amb) * (1.0 - t_ins)", "surface = amb + (skin - amb) * t_ins",
           "insulation inverted"),
    Mutant("synthetic", REND, "temps = t_eps * surface + (1.0 - t_eps) * amb", "temps = surface",
           "emissivity ignored"),
    Mutant("synthetic", REND, "temps = t_eps * surface + (1.0 - t_eps) * amb",
           "temps = t_eps * amb + (1.0 - t_eps) * surface", "emissivity inverted"),
    Mutant("synthetic", REND, "SKIN: (identity.skin_rgb, identity.skin_nir, 0.0, 0.98)",
           "SKIN: (identity.skin_rgb, identity.skin_nir, 0.3, 0.98)", "skin insulated"),
    Mutant("synthetic", REND, "UPPER: (up.rgb, up.nir, up.insulation, up.emissivity)",
           "UPPER: (up.rgb, up.nir, lo.insulation, up.emissivity)", "upper garment uses the lower's insulation"),
    # --- the DAKD student's teacher features
    Mutant("dakd_student", DAKD, "return F.normalize(b_v, dim=1), F.normalize(b_r, dim=1)", "return b_v, b_r",
           "teacher features not normalised"),
    Mutant("dakd_student", DAKD, "return F.normalize(b_v, dim=1), F.normalize(b_r, dim=1)",
           "return F.normalize(b_v, dim=1), b_r", "infrared teacher features not normalised"),
    Mutant("dakd_student", DAKD, "return F.normalize(b_v, dim=1), F.normalize(b_r, dim=1)",
           "return b_v, F.normalize(b_r, dim=1)", "visible teacher features not normalised"),
    # --- SD2-ReID's DDM targets
    Mutant("sd2reid", SD2, 'L.token_statistics(out.parts[f"shared_tokens_{m}"][:, 1:].detach())',
           'L.token_statistics(out.parts[f"final_tokens_{m}"][:, 1:].detach())',
           "style target from the last block, not the shared shallow layer"),
    Mutant("sd2reid", SD2, 'L.token_statistics(out.parts[f"shared_tokens_{m}"][:, 1:].detach())',
           'L.token_statistics(out.parts[f"shared_tokens_{m}"].detach())', "style statistics include the CLS token"),
    Mutant("sd2reid", SD2, '[out.parts[f"sem_logits_{m}"] for m in mods], tau=opts.semantic_tau)',
           '[out.parts[f"logits_{m}"] for m in mods], tau=opts.semantic_tau)',
           "semantic distillation on the per-modality classifiers, not the DDM semantic heads"),
    # --- the method-options parser (config.parse_options / check_options)
    Mutant("options_parser", CONF, "    unknown = [key for key in options if key not in fields]\n",
           "    unknown = []\n", "unknown option keys ignored"),
    Mutant("options_parser", CONF, "close = difflib.get_close_matches(str(key), list(fields), n=3)", "close = []",
           "no close matches suggested"),
    Mutant("options_parser", CONF, 'choices=choices,\n                                  bounds=f.metadata.get("bounds"))',
           'choices=choices,\n                                  bounds=None)', "option ranges not checked"),
    Mutant("options_parser", CONF, "not isinstance(value, bool) and value in (0, 1):",
           "not isinstance(value, bool) and value in (1,):", "the command line's 0 refused for a boolean"),
    Mutant("options_parser", CONF, 'value is None and choices and "none" in choices:',
           "value is None and choices and None in choices:", "the command line's none refused for a text choice"),
    Mutant("options_parser", CONF, "if parsed != value or isinstance(parsed, bool) != isinstance(value, bool):",
           "if isinstance(parsed, bool) != isinstance(value, bool):", "options built in Python not type-checked"),
    # --- each method parses its options with it, before any work
    Mutant("method_options", "workbench/methods/base.py",
           "        self.options(cfg)  # before any work: the request's method_options are valid\n", "",
           "build_model does not parse the options (the baseline ignores them)"),
    Mutant("method_options", "workbench/methods/icre.py", 'explicit = parse_options(options, ICREOptions, "icre")',
           "explicit = {k: v for k, v in options.items() if k in {f.name for f in dataclasses.fields(ICREOptions)}}",
           "ICRE ignores unknown keys (the old behaviour)"),
    Mutant("method_options", DAKD, "    options_class = DAKDTeacherOptions\n",
           "    options_class = DAKDOptions\n", "the teacher phase parses the student's options"),
    Mutant("method_options", "workbench/losses/kd.py", "choices=ABLATIONS + tuple(ABLATION_ALIASES))",
           "choices=ABLATIONS)", "DAKD's code ablation names refused"),
    # --- timing helper (the unit test used to time time.sleep)
    Mutant("profiling", "workbench/profiling.py", "return {k: counts[k] / sorted(v)[len(v) // 2] for k, v in times.items()}",
           "return {k: counts[k] / (sum(v) / len(v)) for k, v in times.items()}", "mean instead of median"),
    Mutant("profiling", "workbench/profiling.py", "    for _ in range(warmup):\n        for fn in fns.values():\n            fn()\n",
           "", "warm-up calls dropped"),
    # --- issue 22 item 5 (helper audit) ------------------------------------------------------------------------
    # --- overwrite guard: only folders the run store made are replaced
    Mutant("overwrite", RUNS, "(path / MARKER).is_file() or ((path / CONFIG).is_file() and (path / ENV).is_file()))",
           "(path / MARKER).is_file() or (path / CONFIG).is_file())",
           "a user folder holding a config.json counts as a run folder"),
    Mutant("overwrite", RUNS, "(path / MARKER).is_file() or ((path / CONFIG).is_file() and (path / ENV).is_file()))",
           "(path / MARKER).is_file())", "a run written before the marker cannot be overwritten"),
    Mutant("overwrite", RUNS, "if path.exists() and not (path.is_dir() and not any(path.iterdir())):",
           "if path.exists():", "an empty folder counts as an existing run"),
    Mutant("overwrite", RUNS, "if path.exists() and any(path.iterdir()):  # check_target allowed it",
           "if path.exists() and (path / MARKER).exists():  # check_target allowed it", "overwrite keeps a pre-marker run's files"),
    # --- best versus last: everything uses the validation-selected weights
    Mutant("selected_weights", RUNS, "if self.best_weights.exists():\n            return self.best_weights\n"
           "        if self.last_checkpoint.exists():\n            return self.last_checkpoint",
           "if self.last_checkpoint.exists():\n            return self.last_checkpoint\n"
           "        if self.best_weights.exists():\n            return self.best_weights",
           "weights_path prefers last.pt"),
    Mutant("selected_weights", TRAIN, "        save_weights(unwrap_model(t.parts.model).state_dict(), t.run.best_weights",
           "    save_weights(unwrap_model(t.parts.model).state_dict(), t.run.best_weights",
           "every validation overwrites best.safetensors"),
    Mutant("selected_weights", TRAIN, 'if metrics.get("mAP", 0.0) > best["score"]:',
           'if metrics.get("rank1", 0.0) > best["score"]:', "selection on rank-1, compared with the best mAP"),
    Mutant("selected_weights", TRAIN, '"best_epoch": state.best["epoch"]', '"best_epoch": state.epoch',
           "best_epoch reports the last epoch"),
    Mutant("selected_weights", TRAIN, "model.load_state_dict(load_weights(run.best_weights))",
           "load_weights(run.best_weights)", "the final test runs on the last weights"),
    Mutant("selected_weights", "workbench/checkpoint.py", 'best=saved["best"],', "best=_no_best(),",
           "a resume forgets the selection made before it"),
    Mutant("selected_weights", TRAIN, "state.epoch % t.cfg.run.eval_every == 0 or state.epoch == t.cfg.optim.epochs)",
           "state.epoch % t.cfg.run.eval_every == 0)", "the last epoch is not validated (eval_every does not divide)"),
    Mutant("selected_weights", "workbench/models/pretrained.py",
           'RUN_WEIGHTS = ("checkpoints/best.safetensors", "checkpoints/last.pt")',
           'RUN_WEIGHTS = ("checkpoints/last.pt", "checkpoints/best.safetensors")',
           "model.pretrained=runs/X starts from last.pt"),
    Mutant("selected_weights", "workbench/methods/base.py", "model.load_state_dict(load_weights(run.weights_path()))",
           "model.load_state_dict(load_weights(run.last_checkpoint))", "load_run_model loads last.pt"),
    # --- protocol identity: evaluations under other protocols or data are never compared
    Mutant("protocol_identity", EVAL, '"branches": list(branches) if branches else ["feats"],',
           '"branches": ["feats"],', "the feature branch is not part of the identity"),
    Mutant("protocol_identity", EVAL, '"root": cfg.data.root,', '"root": None,',
           "the data root is not part of the identity"),
    Mutant("protocol_identity", EVAL, '"root", "data_options", "split_options", "rerank", "branches", "spec")',
           '"root", "data_options", "split_options", "rerank", "spec")', "comparable ignores the branches"),
    Mutant("protocol_identity", EVAL, '"root", "data_options", "split_options", "rerank", "branches", "spec")',
           '"root", "split_options", "rerank", "branches", "spec")', "comparable ignores the data options"),
    Mutant("protocol_identity", EVAL, '("dataset", "layout", "root", "data_options",',
           '("layout", "root", "data_options",', "comparable ignores the dataset name"),
    Mutant("protocol_identity", EVAL, 'if a.meta["gallery_fingerprint"] != b.meta["gallery_fingerprint"]:',
           'if a.meta["query_fingerprint"] != b.meta["query_fingerprint"]:', "comparable ignores the gallery draws"),
    Mutant("protocol_identity", EVAL,
           '"gallery_fingerprint": _features.samples_fingerprint([unique[i] for _, g in rows_of for i in g]),',
           '"gallery_fingerprint": _features.samples_fingerprint([unique[i] for q, _ in rows_of for i in q]),',
           "the gallery fingerprint is taken of the queries"),
    Mutant("protocol_identity", EVAL,
           "identity = protocol_identity(cfg, spec, split_options=split_options, branches=branches)",
           "identity = protocol_identity(cfg, spec, split_options=split_options)",
           "a branch evaluation is stored under the default protocol"),
    # --- the evaluation store: the stored evaluation of exactly the protocol asked for
    Mutant("evaluation_store", EVAL, ' and ident["rerank"] == rerank\n', "\n",
           "a re-ranked evaluation is answered with the plain one"),
    Mutant("evaluation_store", EVAL, '                    and ident.get("branches", ["feats"]) == wanted_branches):',
           "                    ):", "a branch evaluation is answered with the default one"),
    Mutant("evaluation_store", EVAL,
           'split_options, rerank, branches = ident["split_options"] or None, ident["rerank"], ident["branches"]',
           'split_options, rerank, branches = ident["split_options"] or None, False, ident["branches"]',
           "recomputing a stored protocol by key drops its re-ranking"),
    Mutant("evaluation_store", EVAL,
           '    (out / "protocol.json").unlink(missing_ok=True)  # incomplete until the new files are all written\n',
           "", "a half-written re-evaluation reads as complete"),
    Mutant("evaluation_store", EVAL, 'return not ident["split_options"] and not ident["rerank"] and ident.get(',
           'return not ident["split_options"] and not ident["rerank"] or ident.get(',
           "a branch evaluation is taken for the default protocol"),
    # --- the stand-in's cache fingerprint
    Mutant("standin_fingerprint", PRETRAIN, "synthetic_render):", "):", "the renderer is not fingerprinted"),
    Mutant("standin_fingerprint", PRETRAIN, "    h.update(Path(__file__).read_bytes())\n", "",
           "pretrain.py (the attribute training) is not fingerprinted"),
    Mutant("standin_fingerprint", PRETRAIN, '"arch": arch, "kwargs": kwargs,', '"arch": arch,',
           "the backbone's timm arguments are not fingerprinted"),
    # --- step logging (issue 23): run.log_every is a display option
    Mutant("train_log", TRAIN, '("run", "log_every"), ("run", "out_dir")}', '("run", "out_dir")}',
           "a resume with another run.log_every is refused"),
)


def copy_repository(dest: Path, tests_from: str | None) -> None:
    """Tracked and untracked-but-not-ignored files of ROOT into `dest`; `tests/` from `tests_from` if given."""
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listing):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if tests_from:
        shutil.rmtree(dest / "tests", ignore_errors=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", tests_from, "tests"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def present_tests(copy: Path, tests: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tests present in the copy, tests absent from it); a test is a file or a node id `file::test_function`."""
    def present(test: str) -> bool:
        path, _, name = test.partition("::")
        return (copy / path).is_file() and (not name or f"def {name}(" in (copy / path).read_text())

    return tuple(t for t in tests if present(t)), tuple(t for t in tests if not present(t))


def run_tests(copy: Path, files: tuple[str, ...], timeout: float, env: dict[str, str]) -> tuple[str, float]:
    """'pass', 'fail' or 'timeout', and the seconds taken. No tests at all: 'pass' (nothing fails)."""
    start = time.monotonic()
    files, _ = present_tests(copy, files)
    if not files:
        return "pass", 0.0
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *files]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start
    return ("pass" if proc.returncode == 0 else "fail"), time.monotonic() - start


def check_mutants(mutants: list[Mutant], root: Path) -> None:
    for m in mutants:
        n = (root / m.path).read_text().count(m.original)
        if n != 1:
            raise SystemExit(f"mutant {m.what!r}: the original snippet occurs {n} times in {m.path} (must be once); "
                             "update MUTANTS to the current code")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests-from", default=None, help="commit whose tests/ folder to run (default: the current one)")
    ap.add_argument("--areas", default=None, help=f"comma-separated subset of {', '.join(AREA_TESTS)}")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per pytest run (timeout counts as killed)")
    ap.add_argument("--json", default=None, help="write the per-mutant outcomes to this file")
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = ap.parse_args()
    areas = list(AREA_TESTS) if args.areas is None else args.areas.split(",")
    unknown = sorted(set(areas) - set(AREA_TESTS))
    if unknown:
        raise SystemExit(f"unknown areas {unknown}; choose from {list(AREA_TESTS)}")
    mutants = [m for m in MUTANTS if m.area in areas]
    check_mutants(mutants, ROOT)
    if args.list:
        for m in mutants:
            print(f"{m.area:19s} {m.path:36s} {m.what}")
        return

    copy = Path(tempfile.mkdtemp(prefix="mut-"))
    outcomes: list[dict] = []
    try:
        copy_repository(copy, args.tests_from)
        env = {**os.environ, "PYTHONPATH": str(copy), "MPLBACKEND": "Agg",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        env.setdefault("WORKBENCH_CACHE", str(copy / ".cache"))  # shared by all runs: synthetic exports reused
        baseline = {}
        for area in areas:
            baseline[area], secs = run_tests(copy, AREA_TESTS[area], args.timeout, env)
            absent = present_tests(copy, AREA_TESTS[area])[1]
            note = f"; not in the measured tests: {', '.join(absent)}" if absent else ""
            print(f"baseline {area:19s} {baseline[area]} ({secs:.0f}s){note}", flush=True)
        for m in mutants:
            if baseline[m.area] != "pass":
                continue
            target = copy / m.path
            original = target.read_text()
            try:
                target.write_text(original.replace(m.original, m.mutated, 1))
                status, secs = run_tests(copy, AREA_TESTS[m.area], args.timeout, env)
            finally:
                target.write_text(original)
            killed = status != "pass"
            outcomes.append({"area": m.area, "path": m.path, "what": m.what, "status": status, "killed": killed})
            print(f"{'killed ' if killed else 'SURVIVED'} {m.area:19s} {m.what} ({status}, {secs:.0f}s)", flush=True)
    finally:
        shutil.rmtree(copy, ignore_errors=True)

    print(f"\nmutation audit, tests from {args.tests_from or 'the working tree'}")
    print(f"{'area':19s} {'tried':>5s} {'killed':>6s}  survivors")
    for area in areas:
        rows = [o for o in outcomes if o["area"] == area]
        if baseline.get(area) != "pass":
            print(f"{area:19s} {'-':>5s} {'-':>6s}  baseline {baseline.get(area)}: tests fail without a mutant")
            continue
        survivors = "; ".join(o["what"] for o in rows if not o["killed"])
        print(f"{area:19s} {len(rows):5d} {sum(o['killed'] for o in rows):6d}  {survivors}")
    if args.json:
        Path(args.json).write_text(json.dumps({"tests_from": args.tests_from, "baseline": baseline,
                                               "mutants": outcomes}, indent=1))


if __name__ == "__main__":
    main()
