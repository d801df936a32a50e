"""Why does the MCE teacher lag the baseline in the cpu-demo? Measure the memories against the features that train.

Trains the cpu-demo `dakd_teacher` recipe (shortened) from random weights and from the stand-in pre-trained
backbone (`model.pretrained="synthetic"`), with a probe around the method that records, without changing training:

- at each epoch start, the memories just rebuilt from eval-mode features: the mean cosine between the global memory
  rows of different identities (1.0 means every row points the same way), and retrieval mAP on the *training*
  identities (visible -> infrared, eval-mode features) next to the validation mAP `fit` logs;
- at every step, before the momentum update: the cosine of each train-mode visible feature with its own identity's
  global memory row, the cosine between the train-mode and the eval-mode feature of the same image (the batch-norm
  train/eval gap), the global-memory cross-entropy next to chance (log C), and every loss term.

    python benchmarks/diagnose_mce_teacher.py --epochs 6 --out outputs/diagnosis

Writes `diagnosis.json` and `mce_teacher_diagnosis.png` under --out and prints a summary table.

A snapshot of one trained teacher (seconds; `fresh` for random weights), without training:

    python benchmarks/diagnose_mce_teacher.py --snapshot runs/<teacher run> [--snapshot fresh]

rebuilds the memories from the run's weights as an epoch start would, then compares them with training batches
seen in train mode and in eval mode (batch-norm buffers restored after every train-mode forward, so nothing
drifts): the cosine with the own identity's row, the mean cosine with all rows (a component every row shares),
the memory cross-entropy and top-1 against the memory, per modality; and the same for the clean eval-mode
features the memories were built from.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench.config import get_config
from workbench.methods import register_method
from workbench.methods.dakd import RGB, DAKDTeacher, _modality, _vi_tensors

RECORDS: list[dict] = []


def memory_stats(feats: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, tau: float) -> dict:
    """Features (B, D) against normalised memory rows (C, D): cosine with the own identity's row, mean cosine with
    all rows (a component every row shares), memory cross-entropy at temperature `tau` next to chance (log C), and
    top-1 against the memory."""
    f = F.normalize(feats.float(), dim=1)
    sims = f @ rows.T
    return {"own_row_cos": float((f * rows[labels]).sum(1).mean()), "all_rows_cos": float(sims.mean()),
            "memory_ce": float(F.cross_entropy(sims / tau, labels)), "chance_ce": math.log(len(rows)),
            "top1": float((sims.argmax(1) == labels).float().mean())}


@register_method("dakd_teacher_probe")
class ProbedTeacher(DAKDTeacher):
    """The MCE teacher with read-only measurements (same losses, same updates, same random streams)."""

    def on_epoch_start(self, model, epoch):
        super().on_epoch_start(model, epoch)
        rows = F.normalize(self.memories.global_.features.float(), dim=1)
        cos = rows @ rows.T
        off = cos[~torch.eye(len(cos), dtype=torch.bool)]
        RECORDS.append({"kind": "epoch", "epoch": epoch, "memory_row_cos": float(off.mean()),
                        "train_ids_mAP": self._train_map(model)})

    def _train_map(self, model) -> float:
        from workbench.features import extract_features
        from workbench.metrics import rank_metrics

        rgb = extract_features(model, self.rgb_samples, self.cfg, method=self, progress=False)
        ir = extract_features(model, self.ir_samples, self.cfg, method=self, progress=False)
        q, g = F.normalize(torch.from_numpy(rgb.branches["feats"]), dim=1), \
            F.normalize(torch.from_numpy(ir.branches["feats"]), dim=1)
        dist = (2 - 2 * q @ g.T).numpy()
        res = rank_metrics(dist, rgb.pids, ir.pids, rgb.camids, ir.camids, junk="none")
        return float(res.mAP)

    def training_losses(self, model, batch, cfg):
        device = next(model.parameters()).device
        rgb, _, labels = _vi_tensors(batch, device)
        if self.memories is None:
            self.memories = self.build_memories(model, self.epoch)
        rows = F.normalize(self.memories.global_.features.float(), dim=1)  # a copy: the update below leaves it as is
        captured = []  # the train-mode forward of [visible; infrared; exchanged] inside the loss (no extra BN update)
        hook = model.register_forward_hook(lambda _m, _i, out: captured.append(out.feats.detach()))
        try:
            terms = super().training_losses(model, batch, cfg)
        finally:
            hook.remove()
        with torch.no_grad():
            was = model.training
            train_f = F.normalize(captured[0][:len(rgb)].float(), dim=1)
            model.eval()  # eval mode: running statistics are read, not updated
            eval_f = F.normalize(model(rgb, _modality(len(rgb), RGB, device)).feats.float(), dim=1)
            model.train(was)
            stats = memory_stats(train_f, labels, rows, self.loss_cfg.tau)
        RECORDS.append({"kind": "step", "epoch": self.epoch,
                        "own_row_cos": stats["own_row_cos"],
                        "train_eval_cos": float((train_f * eval_f).sum(1).mean()),
                        "global_ce_visible": stats["memory_ce"], "chance_ce": stats["chance_ce"],
                        **{f"loss/{k}": float(v.detach()) for k, v in terms.items()}})
        return terms


def run(init: str, epochs: int, out_dir: Path) -> dict:
    from workbench.train import fit

    RECORDS.clear()
    cfg = get_config("dakd_teacher", "synthetic-vi", "cpu-demo").override(**{
        "run.method": "dakd_teacher_probe", "optim.epochs": epochs, "run.eval_every": 1,
        "model.pretrained": "synthetic" if init == "standin" else None,
        "run.out_dir": str(out_dir / "runs"), "run.name": f"teacher-{init}", "run.live_plot": False})
    tick = time.perf_counter()
    trained = fit(cfg, overwrite=True, progress=False)
    seconds = time.perf_counter() - tick
    metrics = trained.metrics
    val = metrics.dropna(subset=["val/mAP"])[["epoch", "val/mAP", "val/rank1"]].to_dict("records") \
        if "val/mAP" in metrics else []
    return {"init": init, "seconds": seconds, "records": list(RECORDS), "val": val,
            "test": trained.results.get("test", {}).get("mean", {})}


def summarise(result: dict) -> list[dict]:
    rows = []
    steps = [r for r in result["records"] if r["kind"] == "step"]
    val = {int(v["epoch"]): v["val/mAP"] for v in result["val"]}
    for rec in (r for r in result["records"] if r["kind"] == "epoch"):
        e = rec["epoch"]
        mine = [s for s in steps if s["epoch"] == e]
        rows.append({"init": result["init"], "epoch": e + 1, "memory_row_cos": rec["memory_row_cos"],
                     "train_ids_mAP_at_start": rec["train_ids_mAP"],
                     "own_row_cos": np.mean([s["own_row_cos"] for s in mine]),
                     "train_eval_cos": np.mean([s["train_eval_cos"] for s in mine]),
                     "global_ce_first": mine[0]["global_ce_visible"] if mine else float("nan"),
                     "global_ce_last": mine[-1]["global_ce_visible"] if mine else float("nan"),
                     "chance_ce": mine[0]["chance_ce"] if mine else float("nan"),
                     "val_mAP_after": val.get(e + 1)})
    return rows


def plot(results: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for res, colour in zip(results, ("tab:red", "tab:blue")):
        steps = [r for r in res["records"] if r["kind"] == "step"]
        x = np.arange(len(steps))
        axes[0].plot(x, [s["global_ce_visible"] for s in steps], color=colour, label=f"{res['init']}: memory CE")
        axes[0].axhline(steps[0]["chance_ce"], color="grey", ls=":", lw=1)
        axes[1].plot(x, [s["own_row_cos"] for s in steps], color=colour, label=f"{res['init']}: own row")
        axes[1].plot(x, [s["train_eval_cos"] for s in steps], color=colour, ls="--",
                     label=f"{res['init']}: train vs eval")
        ep = [r for r in res["records"] if r["kind"] == "epoch"]
        axes[2].plot([r["epoch"] + 1 for r in ep], [r["memory_row_cos"] for r in ep], "o-", color=colour,
                     label=f"{res['init']}: memory row-to-row cos")
        axes[2].plot([v["epoch"] for v in res["val"]], [v["val/mAP"] for v in res["val"]], "s--", color=colour,
                     label=f"{res['init']}: validation mAP")
    axes[0].set(title="global-memory cross-entropy (visible, train mode)\ndotted: chance, log C", xlabel="step")
    axes[1].set(title="cosine of train-mode features with\nown memory row (solid) / eval-mode self (dashed)",
                xlabel="step", ylim=(-0.1, 1.05))
    axes[2].set(title="memories at epoch start and validation", xlabel="epoch", ylim=(0, 1.05))
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def snapshot(which: str, batches: int = 2) -> list[dict]:
    """Memories of a trained teacher (or random weights) against train-mode and eval-mode features; see the
    module docstring."""
    import copy

    from workbench import data
    from workbench.data.loaders import build_train_loader
    from workbench.methods import get_method
    from workbench.methods.dakd import IR, _eval_features
    from workbench.runs import load_run, load_weights

    torch.manual_seed(0)
    method = get_method("dakd_teacher")
    if which == "fresh":
        cfg = get_config("dakd_teacher", "synthetic-vi", "cpu-demo").override(**{"model.pretrained": None})
        model = method.build_model(cfg, num_classes=0)
    else:
        run = load_run(which)
        cfg = run.config.override(**{"run.method": "dakd_teacher"})
        model = method.build_model(cfg.override(**{"model.pretrained": None}),
                                   num_classes=int(run.results.get("num_classes", 0)))
        model.load_state_dict(load_weights(run.weights_path()))
    model.eval()
    ds = data.load_dataset(cfg.data.dataset, **cfg.data.options)
    train_samples, _, _ = data.holdout_identities(ds.train, cfg.data.val_ids, seed=cfg.run.seed)
    method.setup(model, cfg, train_samples, torch.device("cpu"))
    rows = F.normalize(method.build_memories(model).global_.features.float(), dim=1)
    off = rows @ rows.T
    out = [{"what": "memory rows (eval mode, epoch start)", "row_to_row_cos": float(off[~torch.eye(len(off), dtype=torch.bool)].mean()),
            "classes": len(rows)}]

    def stats(feats, labels, what):
        out.append({"what": what, **memory_stats(feats, labels, rows, method.loss_cfg.tau)})

    loader, _ = build_train_loader(cfg, train_samples)
    for i, batch in zip(range(batches), loader):
        rgb, ir, labels = _vi_tensors(batch, torch.device("cpu"))
        n = len(rgb)
        x = torch.cat([rgb, ir, method._third_view(batch, rgb)])
        mods = torch.cat([_modality(n, RGB, x.device), _modality(n, IR, x.device), _modality(n, RGB, x.device)])
        buffers = copy.deepcopy(model.state_dict())
        with torch.no_grad():
            model.train()
            train_f = model(x, mods).feats
            model.load_state_dict(buffers)  # the train-mode forward updated the running statistics
            model.eval()
            eval_f = model(x, mods).feats
        stats(train_f[:n], labels, f"batch {i}: visible, train mode")
        stats(eval_f[:n], labels, f"batch {i}: visible, eval mode (augmented)")
        stats(train_f[n:2 * n], labels, f"batch {i}: infrared, train mode")
        stats(eval_f[n:2 * n], labels, f"batch {i}: infrared, eval mode (augmented)")
        out[-1]["train_vs_eval_same_image_cos"] = float(F.cosine_similarity(train_f[:n], eval_f[:n]).mean())
    for samples, what in ((method.rgb_samples, "visible"), (method.ir_samples, "infrared")):
        labels = torch.tensor([s.label for s in samples])
        stats(_eval_features(model, samples, cfg, method), labels, f"all training images: {what}, eval mode (clean)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshot", action="append", help="a teacher run folder, or 'fresh' (no training)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--init", nargs="+", default=["scratch", "standin"], choices=["scratch", "standin"])
    parser.add_argument("--out", default="outputs/diagnosis")
    args = parser.parse_args()
    if args.snapshot:
        import pandas as pd

        for which in args.snapshot:
            print(f"== {which}")
            print(pd.DataFrame(snapshot(which)).round(3).to_string(index=False))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [run(init, args.epochs, out) for init in args.init]
    table = [row for res in results for row in summarise(res)]
    (out / "diagnosis.json").write_text(json.dumps({"results": results, "table": table}, indent=1, default=float))
    plot(results, out / "mce_teacher_diagnosis.png")
    import pandas as pd

    print(pd.DataFrame(table).round(3).to_string(index=False))
    for res in results:
        print(f"{res['init']}: {res['seconds']:.0f} s, test {json.dumps({k: round(v, 3) for k, v in res['test'].items()})}")


if __name__ == "__main__":
    main()
