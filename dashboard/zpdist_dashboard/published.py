"""Published Gaia parallax zero-points, per release, shown beside a catalog's fitted offset (the Zero-point tabs).

Each value was checked against the paper's abstract or a citing paper; docs/catalog.md lists where.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedOffset:
    """A published Gaia parallax zero-point: the study (authors, year, stars), Δϖ = ϖ_Gaia − ϖ_true in µas
    (negative: Gaia's parallaxes too small), its quoted error in µas (None when none is quoted), the journal or arXiv
    reference, and whether it is the offset left after the Lindegren et al. (2021) zero-point (as is a catalog's
    fitted with ``zpdist train --parallax-correction l21``)."""

    study: str
    value_uas: float
    error_uas: float | None
    reference: str
    after_l21: bool = False

    @property
    def label(self) -> str:
        """The study, marked when it is an offset left after L21."""
        return f"{self.study}, after L21" if self.after_l21 else self.study


#: Published zero-points (µas) per Gaia release, each checked against the paper's abstract or a citing paper (the
#: sources are listed in docs/catalog.md); DR3 has the astrometry of EDR3.
PUBLISHED_OFFSETS: dict[str, tuple[PublishedOffset, ...]] = {
    "DR2": (
        PublishedOffset("Leung & Bovy 2019 (APOGEE, NN)", -52.3, 2.0, "MNRAS 489, 2079"),
        PublishedOffset("Lindegren et al. 2018 (quasars)", -29.0, None, "A&A 616, A2"),
        PublishedOffset("Zinn et al. 2019 (asteroseismology, Kepler)", -52.8, 2.4, "arXiv:1805.02650"),
        PublishedOffset("Schönrich et al. 2019 (RV sample)", -54.0, 6.0, "MNRAS 487, 3568"),
        PublishedOffset("Riess et al. 2018 (Cepheids)", -46.0, 13.0, "arXiv:1804.10655"),
    ),
    "EDR3": (
        PublishedOffset("Lindegren et al. 2021 (quasars, median)", -17.0, None, "A&A 649, A4"),
        PublishedOffset("Groenewegen 2021 (quasars, mean)", -21.0, None, "A&A 654, A20"),
        PublishedOffset("Huang et al. 2021 (LAMOST red clump, median)", -26.0, None, "arXiv:2101.09691"),
        PublishedOffset("Ren et al. 2021 (W UMa binaries, 5p)", -28.6, 0.6, "arXiv:2103.16096"),
        PublishedOffset("Stassun & Torres 2021 (eclipsing binaries)", -37.0, 20.0, "arXiv:2101.03425"),
        PublishedOffset("Ren et al. 2021 (W UMa binaries, 5p)", 4.2, 0.5, "arXiv:2103.16096", after_l21=True),
        PublishedOffset("Stassun & Torres 2021 (eclipsing binaries)", -15.0, 18.0, "arXiv:2101.03425", after_l21=True),
        PublishedOffset("Zinn 2021 (asteroseismology, G < 10.8)", 15.0, 3.0, "arXiv:2101.07252", after_l21=True),
    ),
}
#: For each release a catalog may record (None: none, the paper's DR2 assumed), the phrase naming it and its values.
PUBLISHED_FOR: dict[str | None, tuple[str, tuple[PublishedOffset, ...]]] = {
    "DR2": ("Gaia DR2", PUBLISHED_OFFSETS["DR2"]),
    "EDR3": ("Gaia EDR3", PUBLISHED_OFFSETS["EDR3"]),
    "DR3": ("Gaia DR3 (the astrometry of EDR3)", PUBLISHED_OFFSETS["EDR3"]),
    None: ("Gaia DR2 (assumed: the catalog records no release)", PUBLISHED_OFFSETS["DR2"]),
}
