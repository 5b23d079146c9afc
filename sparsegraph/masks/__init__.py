"""Masks: layerwise quotas, random (and regular) masks drawn from them, and mask files."""
