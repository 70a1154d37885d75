"""The one periodic-job process: APScheduler jobs that only enqueue actors."""
