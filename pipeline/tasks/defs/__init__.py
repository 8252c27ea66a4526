"""One module (or package, like ``longhealth``) per task; each ends with ``register(TaskDef(...))``
(``pipeline.tasks.registry``), declaring the task's requests, scorer and metrics. The registry imports every
module here, so a new task is a new module (docs/extending.md)."""
