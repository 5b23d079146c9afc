"""The PyTorch side: built-in reference models, applying and extracting masks, and the
pruning-at-initialization scorers."""
