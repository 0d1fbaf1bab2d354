"""The joints: the loop that takes each pool through probe -> logic -> act -> store ->
publish (daemon), the compare-and-set transaction every writer goes through (transact),
the leadership lease when several instances share a store, the event loop, and the services
`mpp run` starts beside the loop. The only package, with mpp.cli, that imports every stage."""
