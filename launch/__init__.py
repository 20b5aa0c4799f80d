"""Helper scripts that run next to drc-jax (the SGLang server for the LLM decomposer)."""
