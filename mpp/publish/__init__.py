"""Stage 5: what tells the world. Everything here reads committed state (the Hub in memory,
or the store) and never decides or acts: role answers for the checks (roles), the REST API
and dashboard (api/), HAProxy's agent-check (haproxy_agent), the rw/ro router (router),
Prometheus metrics, notifications, Nagios lines and the status table (view). Publishers
never import mpp.run: what they need from the loop (operator commands, cycle timings) is
handed to them as plain callables."""
