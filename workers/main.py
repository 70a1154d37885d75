"""Entry module for the `dramatiq` CLI (`salon worker` runs it): builds the container from env."""

from salon.bootstrap import bootstrap
from salon.logs import configure
from salon.settings import Settings

settings = Settings.from_env()
configure(settings.log_level, json_logs=settings.log_json)
container = bootstrap(settings, statement_timeout_ms=60_000)
broker = container.broker
