"""Cyst triage of a focal liver lesion from its CT attenuation (HU).

Rules (the ``cyst_rule`` analysis option):

``acr`` (default) -- after the ACR Incidental Findings Committee white paper on liver lesions
    (Gore et al., J Am Coll Radiol 2017;14:1429-37): a homogeneous lesion of water attenuation
    (mean <= 20 HU) is a simple cyst; 20-45 HU is indeterminate (could be a complicated cyst or a
    hypovascular tumor: counted as tumor and flagged); above 45 HU a solid tumor.
``gaussian45`` -- the seed paper's rule (Kim et al. 2024): smooth the lesion's HU histogram, fit
    a Gaussian; fitted mean < 45 HU -> cyst, otherwise tumor.
``off`` -- every lesion is a tumor.

The Gaussian-fit mean is reported whatever the rule. Attenuation for the ACR rule is read in
the lesion's core (one voxel in from its edge, when enough voxels remain), because the
partial-volume rim mixes in the surrounding liver.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
from scipy import ndimage
from scipy.optimize import curve_fit

from ..core.options import CYST_RULES, AnalysisOptions

RULES = CYST_RULES  # acr, gaussian45, off (one home: core.options)
ACR_CYST_MAX_HU = 20.0  # Gore et al. 2017: <= 20 HU, homogeneous -> benign cyst
ACR_INDETERMINATE_MAX_HU = 45.0  # upper bound of "indeterminate", as set for LiverLVT
HOMOGENEOUS_SD_HU = 25.0  # core SD at or below this (noise ~10-15 HU) counts as homogeneous
SEED_CYST_HU = 45.0  # Kim et al. 2024: fitted Gaussian mean < 45 HU -> cyst
MIN_CORE_VOXELS = 20


def core_values(mask: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """HU of the lesion core: the mask eroded by one voxel (all of it when too small)."""
    core = ndimage.binary_erosion(mask, structure=np.ones((3, 3, 3), bool))
    values = hu[core] if core.sum() >= MIN_CORE_VOXELS else hu[mask]
    return values.astype(np.float64)


def gaussian_fit_mean(values: np.ndarray) -> float:
    """Mean of a Gaussian fitted to the lightly smoothed HU histogram (seed paper's method)."""
    values = np.asarray(values, np.float64)
    if values.size < 5:
        return float(values.mean()) if values.size else float("nan")
    lo, hi = np.percentile(values, [0.5, 99.5])
    lo, hi = max(lo - 10, -200.0), min(hi + 10, 400.0)
    if hi <= lo:
        return float(values.mean())
    edges = np.arange(lo, hi + 2.0, 2.0)  # 2 HU bins
    counts, edges = np.histogram(values, edges)
    counts = ndimage.gaussian_filter1d(counts.astype(float), 2.0)
    centres = (edges[:-1] + edges[1:]) / 2
    gauss = lambda x, a, mu, sd: a * np.exp(-0.5 * ((x - mu) / sd) ** 2)  # noqa: E731
    p0 = (counts.max(), centres[int(counts.argmax())], max(float(values.std()), 2.0))
    try:
        (_, mu, _), _ = curve_fit(gauss, centres, counts, p0=p0, maxfev=2000)
        if not np.isfinite(mu) or not lo <= mu <= hi:
            raise RuntimeError("fit out of range")
        return float(mu)
    except (RuntimeError, ValueError):
        return float(np.median(values))


def triage(mask: np.ndarray, hu: np.ndarray, rule: str = AnalysisOptions.cyst_rule) -> Dict:
    """Classify a lesion: {"classification": tumor|cyst|indeterminate, "cyst_fit_mean_hu", ...}."""
    if rule not in RULES:
        raise ValueError(f"unknown cyst rule {rule!r}; use one of {RULES}")
    values = hu[mask].astype(np.float64)
    core = core_values(mask, hu)
    fit = gaussian_fit_mean(values)
    core_mean, core_sd = float(core.mean()), float(core.std(ddof=1)) if core.size > 1 else 0.0
    result = {"cyst_fit_mean_hu": fit, "core_mean_hu": core_mean, "core_std_hu": core_sd,
              "cyst_rule": rule}
    if rule == "off":
        result.update(classification="tumor", triage_reason="cyst triage switched off")
    elif rule == "gaussian45":
        if fit < SEED_CYST_HU:
            result.update(classification="cyst",
                          triage_reason=f"Gaussian-fit mean {fit:.0f} HU < {SEED_CYST_HU:.0f} HU "
                          "(seed paper rule)")
        else:
            result.update(classification="tumor",
                          triage_reason=f"Gaussian-fit mean {fit:.0f} HU >= {SEED_CYST_HU:.0f} HU "
                          "(seed paper rule)")
    else:  # ACR white paper
        homogeneous = core_sd <= HOMOGENEOUS_SD_HU
        if core_mean <= ACR_CYST_MAX_HU and homogeneous:
            result.update(classification="cyst",
                          triage_reason=f"water attenuation ({core_mean:.0f} HU <= "
                          f"{ACR_CYST_MAX_HU:.0f}) and homogeneous (SD {core_sd:.0f} HU): "
                          "simple cyst (ACR)")
        elif core_mean <= ACR_INDETERMINATE_MAX_HU:
            why = ("not homogeneous" if core_mean <= ACR_CYST_MAX_HU
                   else f"{core_mean:.0f} HU is above water")
            result.update(classification="indeterminate",
                          triage_reason=f"indeterminate ({why}; {ACR_CYST_MAX_HU:.0f}-"
                          f"{ACR_INDETERMINATE_MAX_HU:.0f} HU band, ACR): counted as tumor, "
                          "needs further work-up (MRI or contrast-enhanced follow-up)")
        else:
            result.update(classification="tumor",
                          triage_reason=f"soft-tissue attenuation ({core_mean:.0f} HU > "
                          f"{ACR_INDETERMINATE_MAX_HU:.0f} HU): solid lesion")
    result["homogeneous"] = bool(core_sd <= HOMOGENEOUS_SD_HU)
    return result
