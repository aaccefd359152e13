"""Identities: the private CA, one certificate per identity, revocation, and the nats-server
configuration that maps each certificate to its permissions."""
