"""LiverLVT engine: CT -> liver/vessel/tumor labels -> measurements -> stage -> report.

Importable without 3D Slicer. Each pipeline stage lives in its own module:
``io`` (read/write), ``preprocess`` (grid + intensity), ``model`` (model card, network),
``inference`` (sliding window), ``postprocess`` (anatomical clean-up), ``segment`` (the whole
CT -> labels step), ``phantom`` (synthetic CT with truth), ``cli`` (the ``liverlvt`` command).
"""

__version__ = "0.1.0"
