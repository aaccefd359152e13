"""The risk gate: deterministic pre-trade checks over an exposure that counts pending approvals."""
