"""Fixtures and builders shared by every test layer, each written once."""
