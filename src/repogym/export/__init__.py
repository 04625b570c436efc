"""Exports: our tasks in other harnesses' formats.

- ``swebench``: SWE-bench instances, each task state a sealed commit in a bare repository of its own;
- ``harbor``: Harbor task folders (instruction.md, task.toml, environment/, tests/, solution/);
- ``hf``: a Hugging Face dataset (parquet in the SWE-bench column layout plus repogym's fields, and a card).

Every export that ships a repository ships the task state only: one parentless commit, no object of the base.
"""

from repogym.export.swebench import export_swebench
from repogym.export.tasks import instance_id

__all__ = ["export_swebench", "instance_id"]
