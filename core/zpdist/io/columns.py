"""The canonical column names of zpdist, and the survey names that map onto them.

Every reader renames survey columns (APOGEE DR14/DR16/DR17 allStar, Gaia DR2/EDR3 cross-matches)
onto the lower-case canonical names below, so the rest of the code sees one schema.
Aliases are matched case-insensitively, in the order given: the first one present wins.
"""

from __future__ import annotations

import numpy as np

from zpdist.errors import FileFormatError, InputError

#: The 15 abundance ratios of the paper's maps (docs/method.md §7), as canonical [X/Fe] names.
#: APOGEE spells Ti II "TIII".
ELEMENTS: tuple[str, ...] = (
    "C", "N", "O", "NA", "MG", "AL", "SI", "S", "K", "CA", "TIII", "V", "MN", "CO", "NI",
)  # fmt: skip
XFE_COLUMNS: tuple[str, ...] = tuple(f"{el.lower()}_fe" for el in ELEMENTS)

#: Gaia column prefixes in allStar-like files, in order of preference (DR17, DR16, merged DR2, bare).
GAIA_PREFIXES: tuple[str, ...] = ("GAIAEDR3_", "GAIA_", "GAIADR2_", "")

#: Gaia fields and the suffixes under which they appear after a prefix of :data:`GAIA_PREFIXES`.
GAIA_FIELDS: dict[str, tuple[str, ...]] = {
    "source_id": ("SOURCE_ID",),
    "parallax": ("PARALLAX",),
    "parallax_error": ("PARALLAX_ERROR",),
    "phot_g_mean_mag": ("PHOT_G_MEAN_MAG", "G"),
    "phot_bp_mean_mag": ("PHOT_BP_MEAN_MAG", "BP"),
    "phot_rp_mean_mag": ("PHOT_RP_MEAN_MAG", "RP"),
    "bp_rp": ("BP_RP",),
    "visibility_periods_used": ("VISIBILITY_PERIODS_USED",),
    # the inputs of the Lindegren et al. (2021) zero-point (zpdist.lindegren; Gaia (E)DR3 only, except ecl_lat)
    "nu_eff_used_in_astrometry": ("NU_EFF_USED_IN_ASTROMETRY",),
    "pseudocolour": ("PSEUDOCOLOUR",),
    "ecl_lat": ("ECL_LAT",),
    "astrometric_params_solved": ("ASTROMETRIC_PARAMS_SOLVED",),
}

#: The Gaia releases a table's astrometry can come from. EDR3 and DR3 share one astrometric solution (DR3 did
#: not redo the astrometry: same parallaxes, nu_eff_used_in_astrometry and pseudocolour), so they differ here only
#: in name; the Lindegren et al. (2021) correction applies to both.
GAIA_RELEASES: tuple[str, ...] = ("DR2", "EDR3", "DR3")

#: The release each prefix of :data:`GAIA_PREFIXES` implies, with the file it comes from; bare names imply none.
GAIA_PREFIX_RELEASES: dict[str, tuple[str | None, str]] = {
    "GAIAEDR3_": ("EDR3", "APOGEE DR17 allStar names: Gaia EDR3 astrometry"),
    "GAIA_": ("DR2", "APOGEE DR16 allStar names: Gaia DR2 astrometry"),
    "GAIADR2_": ("DR2", "Gaia DR2 cross-match names"),
    "": (None, "bare Gaia names do not say which release"),
}

#: APOGEE fields: canonical name -> aliases. ``KS`` comes before ``K`` because some merged
#: tables (e.g. TwoFace) use ``K`` for a radial-velocity semi-amplitude.
APOGEE_FIELDS: dict[str, tuple[str, ...]] = {
    "apogee_id": ("APOGEE_ID",),
    "ra": ("RA",),
    "dec": ("DEC",),
    "glon": ("GLON",),
    "glat": ("GLAT",),
    "j": ("J",),
    "h": ("H",),
    "k": ("KS", "K"),
    "k_err": ("KS_ERR", "K_ERR"),
    "ak": ("AK_TARG", "AK"),
    "snr": ("SNR",),
    "starflag": ("STARFLAG",),
    "aspcapflag": ("ASPCAPFLAG",),
    "vscatter": ("VSCATTER",),
    "teff": ("TEFF",),
    "teff_err": ("TEFF_ERR",),
    "logg": ("LOGG",),
    "logg_err": ("LOGG_ERR",),
    "fe_h": ("FE_H",),
    "fe_h_err": ("FE_H_ERR",),
    "m_h": ("M_H",),
    "alpha_m": ("ALPHA_M",),
    "alpha_m_err": ("ALPHA_M_ERR",),
    "mass": ("MCORR", "MASS"),  # asteroseismic mass (M_sun) of APOKASC-2-like tables, usable as a labels-mode input
}
for _el in ELEMENTS:
    APOGEE_FIELDS[f"{_el.lower()}_fe"] = (f"{_el}_FE",)
    APOGEE_FIELDS[f"{_el.lower()}_fe_err"] = (f"{_el}_FE_ERR",)
    APOGEE_FIELDS[f"{_el.lower()}_fe_flag"] = (f"{_el}_FE_FLAG",)

#: Canonical columns that hold text; every other canonical column is numeric.
STRING_COLUMNS: frozenset[str] = frozenset({"apogee_id", "telescope", "field"})

#: Integer bit-mask columns: kept as integers, never turned to NaN.
INTEGER_COLUMNS: frozenset[str] = frozenset(
    {"starflag", "aspcapflag", "source_id", "visibility_periods_used", "astrometric_params_solved"}
    | {f"{c}_flag" for c in XFE_COLUMNS}
)


class DuplicateColumnError(FileFormatError):
    """Two columns of one file whose names differ only in case; the caller adds the file name."""


#: The value APOGEE and astroNN use for "missing".
MISSING_VALUE = -9999.0


def missing_to_nan(values) -> np.ndarray:
    """Float64 copy of ``values`` with the −9999 marker (and anything below it) as NaN."""
    values = np.array(values, dtype=float)
    values[values <= MISSING_VALUE + 0.5] = np.nan
    return values


def resolve_columns(available: list[str]) -> dict[str, str]:
    """Map canonical names onto the columns present in a file.

    Parameters
    ----------
    available : list of str
        Column names present in the file.

    Returns
    -------
    dict
        canonical name -> file column name, for every canonical field found. Gaia fields take
        the first prefix of :data:`GAIA_PREFIXES` under which a parallax is present, so the
        astrometry and photometry of one release are never mixed.

    Raises
    ------
    DuplicateColumnError
        If two columns differ only in case (``GAIA_PARALLAX`` and ``gaia_parallax``): which one is meant
        cannot be told.
    """
    by_upper: dict[str, str] = {}
    for name in available:
        if name.upper() in by_upper:
            raise DuplicateColumnError(
                f"columns {by_upper[name.upper()]!r} and {name!r} differ only in case; zpdist reads column names "
                "case-insensitively, so keep one of them"
            )
        by_upper[name.upper()] = name
    mapping: dict[str, str] = {}
    for canonical, aliases in APOGEE_FIELDS.items():
        for alias in aliases:
            if alias in by_upper:
                mapping[canonical] = by_upper[alias]
                break
    for prefix in gaia_prefixes_present(available):
        for canonical, suffixes in GAIA_FIELDS.items():
            for suffix in suffixes:
                if f"{prefix}{suffix}" in by_upper and canonical not in mapping:
                    mapping[canonical] = by_upper[f"{prefix}{suffix}"]
                    break
        break
    return mapping


def gaia_prefixes_present(available: list[str]) -> list[str]:
    """Gaia prefixes (from :data:`GAIA_PREFIXES`) under which a parallax column exists, in preference order."""
    upper = {name.upper() for name in available}
    return [p for p in GAIA_PREFIXES if f"{p}PARALLAX" in upper]


def gaia_parallax_names_looked_for() -> list[str]:
    """The parallax column names a reader looks for, for error messages."""
    return [f"{p}PARALLAX" for p in GAIA_PREFIXES]


def gaia_release_from_columns(available: list[str]) -> tuple[str | None, str]:
    """Which Gaia release a file's astrometry is, from the prefix its parallax is read under.

    Parameters
    ----------
    available : list of str
        Column names present in the file.

    Returns
    -------
    release : str or None
        One of :data:`GAIA_RELEASES`, or None when the names do not say (bare names, or no parallax).
    source : str
        How it was decided, for metadata and messages, e.g. ``"column prefix GAIAEDR3_ (APOGEE DR17 allStar
        names: Gaia EDR3 astrometry)"``.
    """
    prefixes = gaia_prefixes_present(available)
    if not prefixes:
        return None, "no Gaia parallax column"
    release, meaning = GAIA_PREFIX_RELEASES[prefixes[0]]
    if not prefixes[0]:
        return None, f"{meaning}; pass gaia_release= to state it"
    return release, f"column prefix {prefixes[0]} ({meaning})"


def normalise_gaia_release(release: str) -> str:
    """A user-stated Gaia release as one of :data:`GAIA_RELEASES` (case-insensitive; a leading "Gaia " is allowed).

    Raises
    ------
    InputError
        If ``release`` is not one of them.
    """
    name = str(release).strip().upper().removeprefix("GAIA").strip()
    if name not in GAIA_RELEASES:
        raise InputError(f"unknown Gaia release {release!r}; choose one of {', '.join(GAIA_RELEASES)}")
    return name
