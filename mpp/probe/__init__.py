"""Stage 1: reading servers. connection.py (targets, bounded connections), mysql.py (one
prober per node: an Observation every cycle, never an exception), flavor.py (the only place
that knows MySQL from MariaDB). Room for checkpoints (probes of the network, not of a node)."""
