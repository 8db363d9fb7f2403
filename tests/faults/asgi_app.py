"""The web app as the fault tests serve it: app.asgi's app plus the 503 handler for an
unreachable database (app/unavailable.py), registered here until create_app does it itself."""

from app import unavailable
from app.main import create_app

app = create_app()
unavailable.register(app)
