"""What a fit returns: `CVResult` (per-fold history, mean ± std, best epoch), its files, plots, comparisons."""

from lcv_core.core.statistics import sample_std, t975
from lcv_core.results.compare import Comparison, FoldsDifferError, compare_scores, corrected_ttest, holm
from lcv_core.results.cv_result import CVResult, MetricSummary

__all__ = [
    "CVResult",
    "Comparison",
    "FoldsDifferError",
    "MetricSummary",
    "compare_scores",
    "corrected_ttest",
    "holm",
    "sample_std",
    "t975",
]
