"""The node agent's room (not built yet; see docs/architecture.md): `mpp agent` beside each
mysqld, supervising it (local restarts under a retry limit), probing in depth (write probe)
and fencing its node when cut off. It will join probe/, act/ and store/ on one host, as
mpp.run joins them for the pools."""
