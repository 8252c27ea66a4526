"""One module per task; each ends with ``register(TaskDef(...))`` (``pipeline.tasks.registry``). The registry
imports every module here, so a new task is a new module (docs/extending.md)."""
