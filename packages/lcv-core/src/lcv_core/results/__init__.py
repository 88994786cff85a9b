"""What a fit returns: :class:`CVResult` (per-fold history, mean ± std, best epoch), its files and plots."""

from lcv_core.results.cv_result import CVResult, MetricSummary
from lcv_core.results.statistics import sample_std, t975

__all__ = ["CVResult", "MetricSummary", "sample_std", "t975"]
