"""Evaluation: distances, protocol-exact ranking metrics, re-ranking and disentanglement scores."""

from workbench.metrics.disentanglement import DisentanglementReport, disentanglement_report
from workbench.metrics.distance import l2_normalize, pairwise_distance
from workbench.metrics.protocols import (
    PROTOCOLS,
    EvalSet,
    ProtocolResult,
    ProtocolSpec,
    combine_branches,
    evaluate_directions,
    evaluate_pair,
    evaluate_trials,
    with_rerank,
)
from workbench.metrics.ranking import RankResult, rank_metrics
from workbench.metrics.rerank import k_reciprocal_rerank

__all__ = [
    "DisentanglementReport",
    "PROTOCOLS",
    "EvalSet",
    "ProtocolResult",
    "ProtocolSpec",
    "RankResult",
    "combine_branches",
    "disentanglement_report",
    "evaluate_directions",
    "evaluate_pair",
    "evaluate_trials",
    "k_reciprocal_rerank",
    "l2_normalize",
    "pairwise_distance",
    "rank_metrics",
    "with_rerank",
]
