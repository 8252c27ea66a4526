"""medsweep: serve LLMs with vLLM and score them on medical tasks."""

__version__ = "0.1.0"
