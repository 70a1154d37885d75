"""Entry module for the `dramatiq` CLI (`salon worker` runs it): builds the container from env."""

import multiprocessing

from salon.bootstrap import bootstrap
from salon.infra.logs import configure
from salon.settings import Settings
from workers.supervisor import die_with_parent

# Imported in each worker process Dramatiq forks. A worker whose Dramatiq parent was killed
# would go on consuming with nothing watching it while `salon worker` starts another: it goes
# with its parent instead, as it would if the whole process group were killed.
_parent = multiprocessing.parent_process()
if _parent is not None and _parent.pid is not None:
    die_with_parent(parent=_parent.pid)

settings = Settings.from_env()
configure(settings.log_level, json_logs=settings.log_json)
container = bootstrap(settings, statement_timeout_ms=60_000)
broker = container.broker
