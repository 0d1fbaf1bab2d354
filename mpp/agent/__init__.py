"""The node agent: `mpp agent` beside each mysqld (docs/agent.md).

restarts.py: the retry rules (pure); mysqld.py: its own child or a process named by a pid
file; supervise.py: the loop and its report; depth.py: the ping and the write probe;
renewal.py: reports through mpp's store (the fence lease) and the pool's state read back;
fencing.py: when to fence (pure); guard.py: the fence check; local.py: the session to its
own server and the fence; peers.py: which of the pool's other nodes are in reach.
"""
