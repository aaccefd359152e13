"""The analyst: retrieval over the firm's documents, a chat-model review, a guard. Advisory only."""
