"""Utilities: parameter and MAC counting."""
