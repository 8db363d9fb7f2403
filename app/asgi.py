"""`uvicorn app.asgi:app` (or any ASGI server) for running the web app at scale."""

from app.main import create_app

app = create_app()
