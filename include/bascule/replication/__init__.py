"""One replication interface, chosen by the plan: postgres-logical, goldengate or none."""
