"""``shakegen serve``: a JSON and server-sent-events API and a web page over the Python API.

    limits.py           what one request may ask for (no third-party imports: the CLI reads its defaults)
    request_models.py   the request bodies, built per server with its limits, and what each field accepts
    parsing.py          a body read into its request model, with one-line errors naming the field and its range
    answers.py          the error and answer models, and the statuses each route documents
    generation_plan.py  a /v1/generate request checked and planned (seed, options, engine) before sampling
    worker.py           the one thread that runs the model: sample blocks and evaluation turns taking turns
    turns.py            running a function one step at a time on its own thread (an evaluation's turns)
    card.py             the model's card (GET /v1/model) and the run's name as clients see it
    gate.py             what every request passes first: Host, Origin (CORS), bearer token, JSON content type, size cap
    server_routes.py    the page, /healthz and /v1/model
    sampling_routes.py  /v1/generate (plain or streamed), /v1/beam, /v1/suggest
    scoring_routes.py   /v1/evaluate, /v1/inspect
    app.py              the FastAPI app: the Gate, the error handler, every group's routes, the offline docs
    server.py           binding the socket and running uvicorn

FastAPI, pydantic and uvicorn are an optional extra (``pip install 'shakegen[serve]'``), imported
only by the app's modules (reached through ``app.py``) and ``server.py``, so the rest of
shakegen never needs them.
"""
