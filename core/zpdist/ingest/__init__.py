"""Turning real survey files (APOGEE allStar, Gaia cross-matches, apStar spectra) into zpdist's inputs."""
