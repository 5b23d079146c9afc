"""What a mask does to the network: effective sparsity and the audit, spectral (Ramanujan)
metrics, path counts."""
