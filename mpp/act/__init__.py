"""Stage 3: carrying out the logic's actions on the servers (executor) and the operator's
hooks around them. Decides nothing: what to do comes from mpp.logic, how to say it in SQL
from mpp.probe.flavor."""
