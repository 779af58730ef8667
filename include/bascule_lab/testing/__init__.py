"""Test doubles shared by the tests, the lab and the demo."""
