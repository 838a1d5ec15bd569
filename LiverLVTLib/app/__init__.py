"""Where the stages are joined for 3D Slicer: ``workflow.CaseWorkflow`` (CT volume -> labels ->
measurements -> scene, Recompute, restage, report, background runs), ``background_job`` (the
engine in a ``PythonSlicer`` child process), ``dependencies`` (the in-Slicer installer, from
pyproject.toml), ``scene_bundle`` (``--scene OUT.mrb``), ``selftest`` (the module's checks)."""
from .workflow import CaseWorkflow

__all__ = ["CaseWorkflow"]
