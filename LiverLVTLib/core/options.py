"""Typed options of the two engine steps: the one home of their defaults and valid choices.

:class:`SegmentOptions` drives :func:`LiverLVTLib.segmentation.pipeline.segment_ct` and
:class:`AnalysisOptions` drives :func:`LiverLVTLib.analysis.measure.analyze_case`. Each is
validated once (``validate()`` raises :class:`InputError` with a message that names the option,
not a command-line flag) and turned into ``liverlvt`` command-line arguments and back here
(``to_args()`` / ``from_namespace()``), so the CLI, the background job and the Slicer module agree
on every default. The flag of each field is in ``FLAGS``; the CLI builds its parser from it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Union

from .errors import InputError

DEVICES = ("auto", "cpu", "cuda")
N_VALUES = ("N0", "N1", "NX")  # regional lymph nodes (AJCC); NX: not assessed
M_VALUES = ("M0", "M1", "MX")  # distant metastasis (AJCC); MX: not assessed
CYST_RULES = ("acr", "gaussian45", "off")  # see analysis.cyst
MAJOR_VESSEL_MM = 5.0  # vessel diameter at the contact from which contact means stage 4 / T4


def _choices(values) -> str:
    values = list(values)
    return ", ".join(values[:-1]) + " or " + values[-1]


def _known(cls, values: Mapping[str, Any]) -> Dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


class _Options:
    """Shared constructors of the option records."""

    @classmethod
    def from_namespace(cls, ns):
        """Validated options from parsed CLI arguments (attributes named like the fields)."""
        return cls(**_known(cls, vars(ns))).validate()

    @classmethod
    def of(cls, value=None, **changes):
        """Validated options from an instance, a dict (unknown keys ignored, as in
        ``measurements.json``'s ``settings``) or None (the defaults), with ``changes`` on top."""
        if value is None:
            value = cls()
        elif not isinstance(value, cls):
            value = cls(**_known(cls, value))
        return (replace(value, **changes) if changes else value).validate()


@dataclass(frozen=True)
class SegmentOptions(_Options):
    """How to segment: model folder (None: the shipped model), device, flip test-time
    augmentation (None: the model card's choice) and the anatomical clean-up."""

    model_dir: Optional[Union[str, Path]] = None
    device: str = "auto"
    tta: Optional[bool] = None
    postprocess: bool = True

    FLAGS: ClassVar[Dict[str, str]] = {"model_dir": "--model", "device": "--device", "tta": "--tta",
                                       "no_tta": "--no-tta", "postprocess": "--no-postprocess"}

    def __post_init__(self):
        if isinstance(self.device, str):
            object.__setattr__(self, "device", self.device.lower())

    def validate(self) -> "SegmentOptions":
        """Raise InputError for a bad option; returns self."""
        if self.device not in DEVICES:
            raise InputError(f"device '{self.device}' is not one of {', '.join(DEVICES)}",
                             f"choose {_choices(DEVICES)}")
        if self.tta not in (None, True, False):
            raise InputError(f"test-time augmentation '{self.tta}' is not on, off or unset",
                             "choose on, off, or leave it to the model card")
        if self.postprocess not in (True, False):
            raise InputError(f"post-processing '{self.postprocess}' is not on or off", "choose on or off")
        return self

    def to_args(self) -> List[str]:
        """``liverlvt segment`` arguments for these options (defaults included for the device)."""
        self.validate()
        flags = self.FLAGS
        args = [flags["device"], self.device]
        if self.model_dir:
            args += [flags["model_dir"], str(self.model_dir)]
        if self.tta is not None:
            args.append(flags["tta"] if self.tta else flags["no_tta"])
        if not self.postprocess:
            args.append(flags["postprocess"])
        return args


@dataclass(frozen=True)
class AnalysisOptions(_Options):
    """How to analyze: N and M for the AJCC stage group (X: unknown), the cyst rule and the
    major-vessel threshold (mm) of the staging rules."""

    n: str = "NX"
    m: str = "MX"
    cyst_rule: str = "acr"
    major_vessel_mm: float = MAJOR_VESSEL_MM

    FLAGS: ClassVar[Dict[str, str]] = {"n": "--n", "m": "--m", "cyst_rule": "--cyst-rule",
                                       "major_vessel_mm": "--major-vessel-mm"}

    def __post_init__(self):
        for name in ("n", "m"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, value.strip().upper())
        mm = self.major_vessel_mm
        if isinstance(mm, numbers.Real) and not isinstance(mm, bool):
            object.__setattr__(self, "major_vessel_mm", float(mm))

    def validate(self) -> "AnalysisOptions":
        """Raise InputError for a bad option; returns self."""
        if self.n not in N_VALUES:
            raise InputError(f"N category '{self.n}' is not one of {', '.join(N_VALUES)}",
                             f"choose {_choices(N_VALUES)} (unknown)")
        if self.m not in M_VALUES:
            raise InputError(f"M category '{self.m}' is not one of {', '.join(M_VALUES)}",
                             f"choose {_choices(M_VALUES)} (unknown)")
        if self.cyst_rule not in CYST_RULES:
            raise InputError(f"cyst rule '{self.cyst_rule}' is unknown", f"choose {_choices(CYST_RULES)}")
        mm = self.major_vessel_mm
        if not (isinstance(mm, float) and math.isfinite(mm) and mm > 0):
            raise InputError(f"major-vessel threshold {mm} mm is not a positive number",
                             f"give a vessel diameter in mm, e.g. {MAJOR_VESSEL_MM:g}")
        return self

    def to_args(self) -> List[str]:
        """``liverlvt analyze`` arguments for these options (every option, defaults included)."""
        self.validate()
        return [part for name, flag in self.FLAGS.items() for part in (flag, str(getattr(self, name)))]

    def as_settings(self) -> Dict[str, Any]:
        """The ``settings`` record of ``measurements.json``."""
        return asdict(self)
