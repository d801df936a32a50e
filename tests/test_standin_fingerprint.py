"""The stand-in's cache fingerprint covers every file that shapes the stand-in (issue 22 item 5): the files are
found from what the pool-building code runs and imports, not listed by hand, so a generator split into more modules
(world / render / export) is followed; an edit of any of them changes the fingerprint, and so rebuilds the cached
weights instead of reusing weights the current code would not make."""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import inspect
import io
import os
import sys
import textwrap
from pathlib import Path

import pytest

from workbench import pretrain

TINY = pretrain.StandInRecipe(pool_ids=8, images_per_id=2, holdout_ids=2, epochs=1, batch_size=4)


def _files_shaping_the_pool() -> set[Path]:
    """The workbench files that shape the stand-in, found from the code rather than listed: those whose functions
    run while the pool is rendered (traced), the modules that define what the pool code imports from the workbench
    (a dataclass's generated methods are not traced), and pretrain.py (the attribute network and its training).
    Model files are not among them: the stand-in's backbone is timm's, built from the architecture and arguments
    that the fingerprint holds by value (`test_the_fingerprint_follows_the_backbone_description`)."""
    package = Path(pretrain.__file__).resolve().parent
    imported: set[Path] = set()
    for fn in (pretrain.render_pool.__wrapped__, pretrain.standin_cameras):
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(fn)))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench."):
                module = importlib.import_module(node.module)  # imported now: the trace sees calls, not imports
                imported |= {Path(inspect.getsourcefile(getattr(module, a.name))) for a in node.names}
    ran: set[Path] = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_name != "<module>":
            ran.add(Path(frame.f_code.co_filename))

    sys.setprofile(profile)
    try:
        pretrain.render_pool.__wrapped__(pretrain.StandInRecipe(pool_ids=2, images_per_id=2), progress=False)
    finally:
        sys.setprofile(None)
    files = {p.resolve() for p in ran | imported if p.is_file()}
    return {p for p in files if package in p.parents} | {Path(pretrain.__file__).resolve()}


@contextlib.contextmanager
def _edited(path: Path):
    """Every read of `path` (Path.read_bytes / read_text, open) sees one more line in it: the file edited, without
    writing it."""
    target = path.resolve()
    edited = target.read_bytes() + b"\n# an edit\n"
    read_bytes, read_text, real_open = Path.read_bytes, Path.read_text, builtins.open

    def hit(file) -> bool:
        return isinstance(file, (str, os.PathLike)) and Path(file).resolve() == target

    def fake_open(file, mode="r", *args, **kwargs):
        if hit(file) and set(mode) <= set("rbt"):
            return io.BytesIO(edited) if "b" in mode else io.StringIO(edited.decode())
        return real_open(file, mode, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "read_bytes", lambda self: edited if hit(self) else read_bytes(self))
        mp.setattr(Path, "read_text", lambda self, *a, **k: edited.decode() if hit(self) else read_text(self, *a, **k))
        mp.setattr(builtins, "open", fake_open)
        yield


@pytest.mark.parametrize("standin", ["synthetic", "synthetic-distilled"])
def test_the_fingerprint_covers_every_file_that_shapes_the_standin(standin):
    files = _files_shaping_the_pool()
    from workbench.data.synthetic import make_identities, render

    assert {Path(inspect.getsourcefile(f)).resolve() for f in (make_identities, render)} <= files, \
        "the trace must find the generator and the renderer"
    if standin == "synthetic":
        def fingerprint():
            return pretrain.fingerprint("test_vi_resnet", TINY)
    else:  # the distilled stand-in trains on the same pool (helper lite0's module; skipped where it is absent)
        distill = pytest.importorskip("workbench.pretrain_distill")
        files.add(Path(distill.__file__).resolve())

        def fingerprint():
            return distill.fingerprint(*pretrain.backbone_of("test_vi_resnet"), distill.DistillRecipe())
    base = fingerprint()
    assert fingerprint() == base
    ignored = []
    for path in sorted(files):
        with _edited(path):
            if fingerprint() == base:
                ignored.append(path.name)
    assert not ignored, f"{ignored} shape the {standin} stand-in but an edit of them keeps its cache fingerprint"


def test_the_fingerprint_follows_the_backbone_description(monkeypatch):
    base = pretrain.fingerprint("test_vi_resnet", TINY)
    arch, kwargs = pretrain.backbone_of("test_vi_resnet")
    monkeypatch.setattr(pretrain, "backbone_of", lambda name: (arch, {**kwargs, "drop_rate": 0.1}))
    assert pretrain.fingerprint("test_vi_resnet", TINY) != base
    monkeypatch.setattr(pretrain, "backbone_of", lambda name: ("resnet10t", kwargs))
    assert pretrain.fingerprint("test_vi_resnet", TINY) != base
