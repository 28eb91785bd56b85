"""How gunicorn serves the app: the worker class it loads (``worker``) and its parts.

- ``framing``: whether the bytes received so far hold a whole request;
- ``connection``: a connection and the bytes of its next request;
- ``shares``: the connections each worker holds, so they are spread evenly;
- ``stand_in``: the thread that answers liveness probes while a request holds the worker.

gunicorn loads ``service.serving.worker.BufferingThreadWorker`` by name
(``worker_class`` in ``gunicorn.conf.py``); nothing in the app imports this package.
"""
