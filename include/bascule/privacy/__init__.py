"""What keeps patient values out of everything bascule writes: error texts sanitised, identifying keys hashed.

On the ground floor: every layer, from the engines' callers to the reports, uses it, and it
imports nothing of bascule's.
"""
