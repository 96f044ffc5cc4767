from cfapi_fixtures import control_plane, serve

__all__ = ["control_plane", "serve"]
