"""OpenAI's Responses API over a task's stream: the request (:mod:`.request`), the
``Response`` object (:mod:`.objects`), the event translation (:mod:`.translator`) and the
readers (:mod:`.stream`). The routes are ``api.routes.responses``."""
