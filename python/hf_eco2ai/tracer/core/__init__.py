"""The Tracer API's core: ``TrainingTracer`` (in ``hf_eco2ai.tracer.core.tracer``)."""
