"""The node agent: `mpp agent` beside each mysqld (docs/agent.md).

Built: supervision (restarts.py: the retry rules, pure; mysqld.py: its own child or a
process named by a pid file; supervise.py: the loop and its report). To come (issue 13):
reports through the store, the in-depth write probe, the fence lease and self-fencing.
"""
