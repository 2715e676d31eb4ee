"""The parts of the fitted offset's error, as a line of Markdown for the Zero-point tab (docs/method.md §6, §12)."""

from __future__ import annotations

import math

from zpdist_dashboard.text import escape

#: The error's parts: name shown -> key of the catalog's ``model`` metadata (µas).
ERROR_PARTS = {
    "statistical": "offset_uas_err_stat",
    "network": "offset_uas_err_network",
    "offset Monte Carlo": "offset_uas_err_mc",
}


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (metadata comes from a file: anything else is ignored)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def error_budget_markdown(model: dict) -> str:
    """What the fitted offset's error holds and what it leaves out, from a catalog's ``model`` metadata.

    Examples
    --------
    >>> text = error_budget_markdown({"offset_uas_err_stat": 1.2, "offset_uas_err_network": 3.0,
    ...     "offset_uas_err_mc": 0.0, "likelihood": "selection", "selection_bias_uas": 8.4,
    ...     "offset_uas_err_sky_floor": 17.0, "gaia_release": "DR2"})
    >>> for sentence in text.split(" µas"):
    ...     print(sentence)
    Error: statistical 1.2, network 3.0, offset Monte Carlo 0.0
     (selection likelihood). The paper's likelihood would be biased by +8.4
     here. Not included: 17
     of Gaia DR2 sky-correlated systematics over this footprint (Lindegren et al. 2018).
    >>> text = error_budget_markdown({"offset_uas_err_stat": 1.1, "offset_uas_err_network": 2.6,
    ...     "offset_uas_err_half_samples": 1.9, "offset_uas_err_method": "half_samples", "half_samples": 10})
    >>> for part in text.split("; "):
    ...     print(part)
    Error: 1.9 µas, the spread of 10 fits on random halves of the stars (quoted)
    single-fit parts: statistical 1.1, network 2.6 µas.
    """
    parts = [
        f"{name} {value:.1f}" for name, key in ERROR_PARTS.items() if (value := _finite(model.get(key))) is not None
    ]
    text = f"Error: {', '.join(parts)} µas" if parts else "Error parts: not recorded in this catalog"
    half = _finite(model.get("offset_uas_err_half_samples"))
    if half is not None and model.get("offset_uas_err_method") == "half_samples":
        count = model.get("half_samples")
        text = f"Error: {half:.1f} µas, the spread of {count} fits on random halves of the stars (quoted); " + (
            f"single-fit parts: {', '.join(parts)} µas" if parts else "single-fit parts not recorded"
        )
    if isinstance(likelihood := model.get("likelihood"), str):
        text += f" ({escape(likelihood)} likelihood)"
    text += "."
    if (bias := _finite(model.get("selection_bias_uas"))) is not None:
        text += f" The paper's likelihood would be biased by {bias:+.1f} µas here."
    if (floor := _finite(model.get("offset_uas_err_sky_floor"))) is not None:
        release = escape(model.get("gaia_release") or "")
        text += (
            f" Not included: {floor:.0f} µas of Gaia {release} sky-correlated systematics over this footprint "
            "(Lindegren et al. 2018)."
        )
    return text


#: The plane's coefficients in a catalog's ``model.offset_plane``: key -> what is shown.
PLANE_TERMS = {
    "intercept_uas": "Δϖ at the pivot {value:+.1f} ± {error:.1f} µas",
    "slope_g_uas_per_mag": "G {value:+.2f} ± {error:.2f} µas/mag",
    "slope_bp_rp_uas_per_mag": "BP−RP {value:+.2f} ± {error:.2f} µas/mag",
    "slope_teff_uas_per_kk": "Teff {value:+.2f} ± {error:.2f} µas/kK",
}


def plane_markdown(model: dict) -> str:
    """The plane fitted to a multivariate offset model (pivot G 13, BP−RP 1.3, Teff 4750 K), or "" if unrecorded.

    Examples
    --------
    >>> plane = {"intercept_uas": [-45.2, 2.1], "slope_g_uas_per_mag": [-7.5, 0.8],
    ...          "slope_bp_rp_uas_per_mag": [9.1, 1.5], "slope_teff_uas_per_kk": [14.0, 2.2]}
    >>> print(plane_markdown({"offset_plane": plane}).split(": ", 1)[1])
    Δϖ at the pivot -45.2 ± 2.1 µas; G -7.50 ± 0.80 µas/mag; BP−RP +9.10 ± 1.50 µas/mag; Teff +14.00 ± 2.20 µas/kK
    """
    plane = model.get("offset_plane")
    if not isinstance(plane, dict):
        return ""
    terms = []
    for key, template in PLANE_TERMS.items():
        pair = plane.get(key)
        if isinstance(pair, list) and len(pair) == 2 and all(_finite(v) is not None for v in pair):
            terms.append(template.format(value=pair[0], error=pair[1]))
    return "Plane fitted to the offset model (pivot G 13, BP−RP 1.3, Teff 4750 K): " + "; ".join(terms) if terms else ""
