"""bascule.lab."""
