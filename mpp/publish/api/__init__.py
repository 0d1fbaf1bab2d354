"""The REST API and HTTP checks served by `mpp run` (see mpp.publish.api.app)."""

from mpp.publish.api.app import create_app, load_token, serve

__all__ = ["create_app", "load_token", "serve"]
