"""bascule.triggers."""
