"""The unit of data the network's components, the trainer and the warm start exchange."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """Stars' network inputs and Gaia astrometry, as float32 tensors on one device.

    Attributes
    ----------
    inputs : Tensor, shape (N, n_inputs)
        Spectra (continuum-normalised flux) or labels, not standardised.
    offset_inputs : Tensor, shape (N, 3), or None
        G (mag), BP−RP (mag), Teff (K): the multivariate offset model's inputs.
    k_corr : Tensor, shape (N,)
        Extinction-corrected 2MASS K (mag).
    parallax, parallax_error : Tensor, shape (N,)
        Gaia parallax and its error (mas).
    sightline : Tensor, shape (N, 3), or None
        Unit vectors from the Sun towards each star, for the selection-aware likelihood (NaN: unknown).
    """

    inputs: torch.Tensor
    offset_inputs: torch.Tensor | None
    k_corr: torch.Tensor
    parallax: torch.Tensor
    parallax_error: torch.Tensor
    sightline: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.parallax)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: None if v is None else v.to(device) for k, v in moved.items()})

    def select(self, index: torch.Tensor) -> Batch:
        """The stars at ``index`` (a tensor of row numbers on the batch's device)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: None if v is None else v[index] for k, v in moved.items()})
