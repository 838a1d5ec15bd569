"""Model folders: the ``model.json`` card, weight integrity and network construction.

A model folder ``Resources/Models/<name>/`` holds one or more ``*.pt`` state_dicts and a card:

    {"schema": "liverlvt.model/1", "name": ..., "labels": ["liver", "vessel", "tumor"],
     "stages": [                       # run in order; a later stage may crop to the previous one
        {"name": "coarse", "weights": "coarse.pt", "sha256": "...",
         "network": {"class": "UNet", "args": {...}},         # a class of monai.networks.nets
         "spacing_mm": [3, 3, 3], "window_hu": [-200, 300], "patch_size": [96, 96, 96]},
        {"name": "fine", ..., "roi": {"from": "coarse", "channel": "liver", "margin_mm": 15},
         "inputs": ["ct", "vesselness"]}],    # optional, default ["ct"] (see :mod:`.inputs`)
     "inference": {"overlap": 0.5, "sw_batch_size": 2, "threshold": 0.5, "tta_flips": [[2]],
                   "cpu_precision": "fp32", "channels_last": false},   # CPU: "bf16" autocast
     "postprocess": {"min_tumor_ml": 0.1, "liver_margin_mm": 5, "tumor_opening_radius_mm": 1.5},
     "training": {...}, "metrics": {...}, "license": "..."}

Weights are loaded with ``torch.load(weights_only=True)`` after their sha256 was checked against
the card; any mismatch is a clear :class:`ModelError`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..core.errors import ModelError
from ..core.labels import CHANNELS
from .inputs import check_inputs, stage_inputs_of

SCHEMA = "liverlvt.model/1"
MODELS_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
DEFAULT_MODEL = "lvt-unet"


def default_model_dir() -> Path:
    return MODELS_DIR / DEFAULT_MODEL


def available_models() -> List[Path]:
    """Model folders shipped in Resources/Models (data-driven model list for the GUI)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p for p in MODELS_DIR.iterdir() if (p / "model.json").is_file())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_network(spec: Dict[str, Any], stage_name: str = "?"):
    """The network a card's stage spec names: ``{"class": <monai.networks.nets class>, "args":
    {...}}`` (weights not loaded). Inference and training both build theirs here."""
    cls = network_class(spec, stage_name)
    check_network_args(spec, stage_name)
    try:
        return cls(**spec.get("args", {}))
    except Exception as exc:  # noqa: BLE001 - MONAI's own argument checks: a card problem
        raise ModelError(f"model stage '{stage_name}': {cls.__name__} cannot be built from "
                         f"network.args ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                         "fix network.args in model.json or restore it from the release") from None


def network_class(spec: Dict[str, Any], stage_name: str = "?"):
    """The ``monai.networks.nets`` class a stage names; ModelError when there is none."""
    import monai.networks.nets as nets

    cls = getattr(nets, spec.get("class", ""), None)
    if not isinstance(cls, type):
        raise ModelError(f"model stage '{stage_name}' names an unknown network class "
                         f"'{spec.get('class')}'", "use a class of monai.networks.nets")
    return cls


def check_network_args(spec: Dict[str, Any], stage_name: str = "?") -> None:
    """The card's ``network.args`` bound to the class's signature (nothing built): an unknown or
    missing argument is a ModelError naming it."""
    import inspect

    cls = network_class(spec, stage_name)
    args = spec.get("args", {})
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as exc:
        raise ModelError(f"model card stage '{stage_name}' is malformed at network.args: "
                         f"{cls.__name__} {exc}",
                         "fix network.args in model.json or restore it from the release") from None
    except ValueError:  # no signature to check against: the build itself will tell
        pass


@dataclass
class Stage:
    name: str
    weights: Path
    sha256: str
    network: Dict[str, Any]
    spacing_mm: List[float]
    window_hu: List[float]
    patch_size: List[int]
    roi: Optional[Dict[str, Any]] = None
    inputs: List[str] = field(default_factory=lambda: stage_inputs_of({}))  # channels (:mod:`.inputs`)

    def build_network(self):
        """Instantiate the MONAI network named in the card (weights not loaded)."""
        return build_network(self.network, self.name)

    def require_weights(self) -> None:
        if not self.weights.is_file():
            raise ModelError(f"weights file '{self.weights}' is missing",
                             "reinstall the extension or choose a complete model folder")

    def load_network(self, device="cpu"):
        """Check the sha256, load the state_dict (weights_only) and return the eval() network."""
        import torch

        self.require_weights()
        actual = sha256_file(self.weights)
        if actual != self.sha256:
            raise ModelError(f"weights '{self.weights.name}' do not match the model card's sha256 "
                             f"(tampered or corrupt: {actual[:12]}... != {self.sha256[:12]}...)",
                             "restore the original weights (reinstall) or use a model folder "
                             "whose model.json lists these weights")
        network = self.build_network()
        try:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            network.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any load failure is a model problem
            raise ModelError(f"weights '{self.weights.name}' cannot be loaded into "
                             f"{self.network.get('class')} ({type(exc).__name__})",
                             "use the model folder the weights were trained with") from None
        return network.to(device).eval()


@dataclass
class ModelCard:
    folder: Path
    card: Dict[str, Any]
    stages: List[Stage] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.card.get("name", self.folder.name)

    @property
    def inference(self) -> Dict[str, Any]:
        return self.card.get("inference", {})

    @property
    def postprocess(self) -> Dict[str, Any]:
        return self.card.get("postprocess", {})


def _check_schema(card: dict, card_path: Path) -> None:
    """The card against Resources/Schemas/model.schema.json: the first violation, field named."""
    from ..core.schemas import schema_errors

    errors = schema_errors(card, "model")
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ModelError(f"model card '{card_path}' is malformed at {errors[0]}{more}",
                         "restore model.json from the release or fix that field")


def load_card(folder=None) -> ModelCard:
    """Read and validate ``folder/model.json`` (default: the shipped model)."""
    folder = Path(folder) if folder else default_model_dir()
    card_path = folder / "model.json"
    if not card_path.is_file():
        raise ModelError(f"no model card at '{card_path}'",
                         "choose a model folder holding model.json and its weights")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card '{card_path}' is unreadable ({exc})",
                         "restore model.json from the release") from None
    if not isinstance(card, dict):
        kind = {list: "a list", str: "a string"}.get(type(card), f"a JSON {type(card).__name__}")
        raise ModelError(f"model card '{card_path}' is malformed at (top level): {kind}, not an object",
                         "restore model.json from the release (a JSON object with schema, labels, stages)")
    if card.get("schema") != SCHEMA or tuple(card.get("labels", ())) != CHANNELS:
        raise ModelError(f"model card '{card_path}' is not a {SCHEMA} card for labels {CHANNELS}",
                         "use a LiverLVT model folder")
    _check_schema(card, card_path)
    try:
        stages = [Stage(name=s["name"], weights=folder / s["weights"], sha256=s["sha256"],
                        network=s["network"], spacing_mm=[float(v) for v in s["spacing_mm"]],
                        window_hu=[float(v) for v in s["window_hu"]],
                        patch_size=[int(v) for v in s["patch_size"]], roi=s.get("roi"),
                        inputs=stage_inputs_of(s))
                  for s in card["stages"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model card '{card_path}' has an incomplete stage ({exc})",
                         "every stage needs name, weights, sha256, network, spacing_mm, "
                         "window_hu and patch_size") from None
    if not stages:
        raise ModelError(f"model card '{card_path}' lists no stages", "add at least one stage")
    for index, stage in enumerate(stages):
        check_inputs(stage.inputs, stage.network, stage.name, has_roi=bool(stage.roi) and index > 0)
    return ModelCard(folder=folder, card=card, stages=stages)


def write_card(folder: Path, card: Dict[str, Any]) -> Path:
    """Write a card atomically, filling each stage's sha256 from its weights file (no SimpleITK
    needed: training machines write their model folders with it)."""
    from ..core.files import write_text

    for stage in card["stages"]:
        stage["sha256"] = sha256_file(Path(folder) / stage["weights"])
    card.setdefault("schema", SCHEMA)
    card.setdefault("labels", list(CHANNELS))
    return write_text(json.dumps(card, indent=1) + "\n", Path(folder) / "model.json")
