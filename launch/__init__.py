"""Scripts that run next to drc-jax from a checkout (not installed; the logic lives in drc_jax)."""
