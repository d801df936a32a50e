"""Training methods: how a framework builds its model, turns a batch into loss terms, and reads retrieval features.

The engine (`workbench.train`) knows nothing about frameworks; each method is a small class registered here.
`get_method("baseline")` returns the baseline (AGW-style for visible-infrared data, TOP-ReID-style for triplets).
"""

from __future__ import annotations

from workbench.methods.base import Method, get_method, list_methods, load_run_model, register_method
from workbench.methods.baseline import Baseline
from workbench.methods.dakd import DAKD, DAKDTeacher
from workbench.methods.icre import ICRE
from workbench.methods.sd2reid import SD2ReID

__all__ = ["Method", "Baseline", "DAKD", "DAKDTeacher", "ICRE", "SD2ReID", "get_method", "list_methods",
           "load_run_model", "register_method"]
