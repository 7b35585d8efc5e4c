"""``shakegen serve``: a JSON and server-sent-events API and a web page over the Python API.

    limits.py   what one request may ask for (no third-party imports: the CLI reads its defaults)
    schemas.py  the request bodies, validated into one-line errors naming the field and its range
    worker.py   the one thread that runs the model, sample blocks and evaluation turns taking turns, and the card
    gate.py     what every request passes first: Host, Origin (CORS), bearer token, JSON content type, size cap
    app.py      the FastAPI app: routes, the OpenAPI schema of every answer, the page and offline docs
    server.py   binding the socket and running uvicorn

FastAPI and uvicorn are an optional extra (``pip install 'shakegen[serve]'``), imported only
by ``app.py`` and ``server.py``, so the rest of shakegen never needs them.
"""
