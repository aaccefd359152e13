"""The embedded stack on one machine: nats-server, Postgres, the agents under a supervisor, and the
run file that says where they are."""
