"""The REST API and HTTP checks served by `mpp run`: app.py assembles the routers (reads,
checks, monitoring, commands) around one Context; security.py holds the token rules."""

from mpp.publish.api.app import create_app
from mpp.publish.api.security import load_token
from mpp.publish.api.server import serve

__all__ = ["create_app", "load_token", "serve"]
