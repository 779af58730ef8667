"""bascule.operators."""
