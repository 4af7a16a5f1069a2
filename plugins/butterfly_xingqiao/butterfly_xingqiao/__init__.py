"""Butterfly xingqiao (星桥): workflows — DAGs of handler tasks run over the MQ, with no leader.

``from butterfly_xingqiao import workflow``::

    @workflow("greet")
    def greet(flow, name: str, times: int = 1):
        hello = flow.task("/demo_api/hello", str_info=name)
        flow.task("/demo_api/hello", str_info=hello["str_info"], after=[hello], save=True)
"""

from butterfly_xingqiao.definition import Flow, ResultRef, TaskRef, workflow

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["Flow", "ResultRef", "TaskRef", "workflow"]
