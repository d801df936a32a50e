"""The former home of stored evaluations, kept as a thin alias: everything lives in `workbench.evaluate`.

`StoredEvaluation` is `workbench.evaluate.Evaluation`. New code imports from `workbench.evaluate`.
"""

from workbench.evaluate import (  # noqa: F401  (the former names)
    EVALUATIONS,
    Evaluation,
    comparable,
    evaluate_and_store,
    list_evaluations,
    load_evaluation,
    protocol_identity,
    protocol_key,
    protocol_label,
)

StoredEvaluation = Evaluation
