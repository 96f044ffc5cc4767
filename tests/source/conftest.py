import sys
from pathlib import Path

# The scripted HTTP server and the live fixtures live with the client tests; shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cfapi"))

from cfapi_fixtures import control_plane, serve

__all__ = ["control_plane", "serve"]
