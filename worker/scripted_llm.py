"""The scripted model's former home, kept so `agentstream.worker.scripted_llm` imports and
``python -m agentstream.worker.scripted_llm`` go on working.

Everything lives in :mod:`agentstream.worker.scripted` now (its docstring lists the
directives); import from there.
"""

from agentstream.worker.scripted import Directives, ScriptedLLMServer, create_app, main, parse_directives

__all__ = ["Directives", "ScriptedLLMServer", "create_app", "main", "parse_directives"]

if __name__ == "__main__":
    main()
