"""`uvicorn app.asgi:app` (or any ASGI server) for running the web app at scale."""

from app.main import create_app
from app.observability.logging import configure_logging
from app.settings import get_settings

configure_logging(get_settings())
app = create_app()
