"""The protocol dialects the API speaks over the same task streams, one room each.

- :mod:`.agui` and :mod:`.agui_frames`: AG-UI events, the frames of ``?format=ag-ui`` and
  of ``POST /v1/ag-ui``, resumable by frame id;
- :mod:`.responses`: OpenAI's Responses API (``/v1/responses``), events numbered from the
  stream's seq so that ``starting_after`` resumes exactly;
- :mod:`.parking`: the tail both use to end a response where the task waits for a person.

Translation is pure and synchronous; the readers here only feed stored events in. The
routes live in ``api.routes`` (``agui``, ``responses``).
"""
