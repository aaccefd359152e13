"""The firm's documents and the retrieval index over them."""
