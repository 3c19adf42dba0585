"""Report renderers, one module per format; the entry point is ``hf_eco2ai.reporting.generate``."""
