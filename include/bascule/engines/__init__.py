"""bascule.engines."""
