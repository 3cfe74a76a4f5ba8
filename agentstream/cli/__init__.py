"""The ``agentstream`` command, the one composition root of the project (see
:mod:`agentstream.cli.main`). Nothing is imported here, so ``agentstream --help`` stays
light; import the modules themselves (``agentstream.cli.stack``, ``agentstream.cli.embedded``)."""
