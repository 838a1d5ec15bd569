"""Scoring labels: ``evaluate.evaluate_pair`` and ``evaluate.evaluate_manifest`` (metrics.json +
metrics.md), the metric definitions (``metrics``) and cross-validation fold bookkeeping
(``crossval``)."""
