"""Evaluation: distances, protocol-exact ranking metrics, re-ranking and disentanglement scores."""

from workbench.metrics.disentanglement import (
    DisentanglementReport,
    cross_modal_centre_ratio,
    disentanglement_report,
    linear_probe,
    linear_probe_score,
)
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
    protocol_distances,
    with_rerank,
)
from workbench.metrics.ranking import RankedList, RankResult, rank_metrics, rank_order, ranked_list
from workbench.metrics.rerank import k_reciprocal_rerank

__all__ = [
    "DisentanglementReport",
    "PROTOCOLS",
    "EvalSet",
    "ProtocolResult",
    "ProtocolSpec",
    "RankResult",
    "RankedList",
    "combine_branches",
    "cross_modal_centre_ratio",
    "disentanglement_report",
    "evaluate_directions",
    "evaluate_pair",
    "evaluate_trials",
    "k_reciprocal_rerank",
    "l2_normalize",
    "linear_probe",
    "linear_probe_score",
    "pairwise_distance",
    "protocol_distances",
    "rank_metrics",
    "rank_order",
    "ranked_list",
    "with_rerank",
]
