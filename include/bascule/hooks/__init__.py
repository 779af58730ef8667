"""bascule.hooks."""
