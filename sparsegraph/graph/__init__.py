"""The layered bipartite graph of a network: the :class:`~sparsegraph.graph.network.Network`
model, the tracer that builds it from a PyTorch model, and exports to graph libraries."""
