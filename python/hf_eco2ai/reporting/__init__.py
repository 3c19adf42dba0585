"""Reports: their content, one module per format, and the files a run writes.

``generate_carbon_report`` renders one format; ``write_reports`` writes a run's files.
"""

from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS, write_reports
from hf_eco2ai.reporting.generate import OUTPUT_FORMATS, generate_carbon_report
from hf_eco2ai.reporting.summary import final_summary

__all__ = ["DEFAULT_REPORT_FORMATS", "OUTPUT_FORMATS", "final_summary", "generate_carbon_report", "write_reports"]
