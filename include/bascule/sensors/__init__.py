"""bascule.sensors."""
