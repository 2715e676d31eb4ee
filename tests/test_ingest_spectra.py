"""Tests of zpdist.io.apstar (apStar/aspcapStar/npz readers) and ``zpdist ingest spectra`` (docs/method.md §3, §9),
on synthetic files and on the two real DR17 apStar files of ../shared/realdata."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from numpy.testing import assert_array_equal

from zpdist.cli import main
from zpdist.ingest.spectra import (
    IngestConfig,
    gather_files,
    ingest_spectra,
    match_files_to_rows,
    plan_blocks,
    process_files,
    sidecar_paths,
)
from zpdist.io.apstar import (
    APOGEE_PIXMASK,
    DEFAULT_BAD_BITS,
    SpectrumIdentity,
    bad_pixel_mask,
    identify_file,
    read_spectrum,
    read_wavelength,
)
from zpdist.io.spectra import (
    N_APSTAR_PIXELS,
    N_PIXELS,
    SpectraError,
    SpectraReader,
    SpectraWriter,
    apstar_to_grid,
)

IDS = ("2M17335483-2753043", "2M19485057+5005279")
MISSING_ID = "2M00000000+0000000"
QUIET = {"progress": False, "log": lambda message: None}


def real_apstar(realdata, apogee_id: str):
    return realdata / "spectra" / f"apStar-dr17-{apogee_id}.fits"


def write_apstar(path, n_pixels: int = N_APSTAR_PIXELS, n_rows: int = 0, objid: str = "2M11111111+1111111", **header):
    """A synthetic apStar file: a sloped continuum with lines, 1-D (n_rows=0) or 2-D arrays; HDU3 integer mask."""
    x = np.linspace(-1, 1, n_pixels)
    flux = 500 + 50 * x - 30 * np.exp(-0.5 * ((np.arange(n_pixels) % 97 - 48) / 2.0) ** 2)
    error = flux / 100
    mask = np.zeros(n_pixels, np.int64)
    mask[300] = 1 << 0  # BADPIX: bad by default
    mask[400] = 1 << 9  # PERSIST_HIGH: kept by default
    if n_rows:
        flux, error, mask = (np.tile(a, (n_rows, 1)) for a in (flux, error, mask))
        flux[1:] *= 3.0  # rows after the first are not the combined spectrum
    primary = fits.PrimaryHDU()
    primary.header["OBJID"] = objid
    primary.header.update(header)
    fits.HDUList([primary, fits.ImageHDU(flux), fits.ImageHDU(error), fits.ImageHDU(mask)]).writeto(path)
    return path


# ---------------------------------------------------------------- identities and bit masks


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("apStar-dr17-2M17335483-2753043.fits", SpectrumIdentity("2M17335483-2753043")),
        ("aspcapStar-r8-l31c.2-2M00000002+7417074.fits", SpectrumIdentity("2M00000002+7417074")),
        ("asStar-r12-2M00000446+5854329.fits.gz", SpectrumIdentity("2M00000446+5854329", "lco25m")),
        ("stars/apo25m/K04_083+13/apStar-dr17-2M19485057+5005279.fits",
         SpectrumIdentity("2M19485057+5005279", "apo25m", "K04_083+13")),
        ("ThePayne_aspcap-grid_2M13012770+5754582.npz", SpectrumIdentity("2M13012770+5754582")),
        ("VESTA.fits", SpectrumIdentity("VESTA")),
    ],
)  # fmt: skip
def test_identify_file(path, expected):
    assert identify_file(path) == expected


def test_bad_pixel_mask_default_bits():
    assert DEFAULT_BAD_BITS == (0, 1, 2, 3, 4, 5, 6, 7, 12)
    assert [APOGEE_PIXMASK[b] for b in (0, 7, 12)] == ["BADPIX", "NOSKY", "SIG_SKYLINE"]
    bitmask = np.array([0, 1 << 0, 1 << 9, 1 << 12, (1 << 13) | (1 << 1), 1 << 13])
    assert_array_equal(bad_pixel_mask(bitmask), [False, True, False, True, True, False])
    assert_array_equal(bad_pixel_mask(bitmask, bits=(13,)), [False, False, False, False, True, True])
    with pytest.raises(ValueError, match="unknown APOGEE_PIXMASK bit"):
        bad_pixel_mask(bitmask, bits=(20,))


# ---------------------------------------------------------------- readers


@pytest.mark.realdata
def test_read_real_apstar_uses_the_combined_row(realdata):
    for apogee_id, field, n_rows in zip(IDS, ("000+02", "K04_083+13"), (5, 2), strict=True):
        path = real_apstar(realdata, apogee_id)
        spectrum = read_spectrum(path)
        assert spectrum.identity == SpectrumIdentity(apogee_id, None, field)
        assert not spectrum.normalised and spectrum.wavelength is None
        assert spectrum.flux.shape == spectrum.error.shape == spectrum.mask.shape == (N_APSTAR_PIXELS,)
        with fits.open(path) as hdul:
            assert hdul[1].data.shape == (n_rows, N_APSTAR_PIXELS)
            assert_array_equal(spectrum.flux, hdul[1].data[0])
            assert_array_equal(spectrum.mask, hdul[3].data[0])
        cut = apstar_to_grid(spectrum.flux)
        assert np.isfinite(cut).all() and (cut > 0).all()  # the chip gaps (NaN in apStar) are cut away


def test_read_single_and_multi_visit_apstar(tmp_path):
    one = read_spectrum(write_apstar(tmp_path / "apStar-dr17-2M11111111+1111111.fits", FIELD="F1", TELESCOP="apo25m"))
    many = read_spectrum(write_apstar(tmp_path / "apStar-dr17-2M22222222+2222222.fits", n_rows=4, objid="X"))
    assert_array_equal(one.flux, many.flux)  # row 0 only
    assert one.identity == SpectrumIdentity("2M11111111+1111111", "apo25m", "F1")
    assert many.identity.apogee_id == "X"  # the header wins over the file name
    assert one.mask[300] == 1 and one.mask.dtype == np.int64


def test_wrong_pixel_count_names_file_and_shapes(tmp_path):
    path = write_apstar(tmp_path / "apStar-dr17-2M33333333+3333333.fits", n_pixels=8000, n_rows=2)
    with pytest.raises(SpectraError, match=r"apStar-dr17-2M33333333\+3333333\.fits.*\(2, 8000\).*8575"):
        read_spectrum(path)
    npz = tmp_path / "short_2M1.npz"
    np.savez(npz, spectrum=np.ones(7000))
    with pytest.raises(SpectraError, match=r"short_2M1\.npz.*\(7000,\).*8575.*7514"):
        read_spectrum(npz)
    np.savez(npz, spectrum=np.ones(7000), spec_err=np.ones(6999))
    with pytest.raises(SpectraError, match=r"short_2M1\.npz.*\(6999,\).*\(7000,\)"):
        read_spectrum(npz)


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("keep", [0.5, 0.2, 0.001])
def test_truncated_fits_is_a_spectra_error(realdata, tmp_path, keep):
    data = real_apstar(realdata, IDS[0]).read_bytes()
    path = tmp_path / f"apStar-dr17-{IDS[0]}.fits"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SpectraError, match=rf"{re.escape(path.name)}.*(truncated|not a readable)"):
        read_spectrum(path)


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_truncated_at_a_block_boundary_and_garbage(tmp_path):
    path = write_apstar(tmp_path / "apStar-dr17-2M44444444+4444444.fits", n_rows=2)
    data = path.read_bytes()
    path.write_bytes(data[: 2880 * 20])  # inside HDU1's data, but a whole number of blocks
    with pytest.raises(SpectraError, match=re.escape(path.name)):
        read_spectrum(path)
    path.write_bytes(data[: 2880 * 4])  # ends after HDU1's header
    with pytest.raises(SpectraError, match=re.escape(path.name)):
        read_spectrum(path)
    garbage = tmp_path / "apStar-dr17-2M5.fits"
    garbage.write_bytes(b"not a FITS file" * 192)
    with pytest.raises(SpectraError, match="not a readable"):
        read_spectrum(garbage)
    with pytest.raises(SpectraError, match="no such file"):
        read_spectrum(tmp_path / "apStar-dr17-absent.fits")


def test_read_aspcapstar_like_file(tmp_path):
    """aspcapStar: HDU1 normalised flux (zeros in the gaps), HDU2 error, HDU3 the float best-fit model."""
    flux = np.zeros(N_APSTAR_PIXELS)
    on_grid = apstar_to_grid(np.arange(N_APSTAR_PIXELS))
    flux[on_grid] = 0.97
    flux[on_grid[10]] = 0.0  # a masked pixel
    path = tmp_path / "aspcapStar-dr17-2M66666666+6666666.fits"
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(flux), fits.ImageHDU(np.full(N_APSTAR_PIXELS, 0.01))]
    fits.HDUList([*hdus, fits.ImageHDU(flux * 1.01)]).writeto(path)
    spectrum = read_spectrum(path)
    assert spectrum.normalised and not spectrum.mask.any()
    assert spectrum.identity.apogee_id == "2M66666666+6666666"
    result = process_files([str(path)], IngestConfig())
    assert result.ok[0] and result.n_bad[0] == 1
    assert result.flux[0, 10] == 1.0 and np.all(np.delete(result.flux[0], 10) == np.float32(0.97))


@pytest.mark.realdata
def test_read_payne_npz(realdata):
    wavelength = read_wavelength(realdata / "spectra/ThePayne_apogee_wavelength_7214.npz")
    spectrum = read_spectrum(realdata / "spectra/ThePayne_aspcap-grid_2M13012770+5754582.npz", wavelength)
    assert spectrum.normalised and spectrum.identity.apogee_id == "2M13012770+5754582"
    assert spectrum.flux.shape == spectrum.error.shape == spectrum.wavelength.shape == (7214,)
    with pytest.raises(SpectraError, match=r"\(7214,\).*wavelength"):
        read_spectrum(realdata / "spectra/ThePayne_aspcap-grid_2M13012770+5754582.npz")
    with pytest.raises(SpectraError, match="no 'wavelength'"):
        read_wavelength(realdata / "spectra/ThePayne_aspcap-grid_2M13012770+5754582.npz")


# ---------------------------------------------------------------- gathering, matching, blocks


def test_gather_files(tmp_path):
    folder = tmp_path / "stars" / "apo25m" / "F1"
    folder.mkdir(parents=True)
    a = write_apstar(folder / "apStar-dr17-2M1.fits")
    b = write_apstar(tmp_path / "stars" / "aspcapStar-dr17-2M2.fits")
    (tmp_path / "stars" / "notes.txt").write_text("not a spectrum")
    assert gather_files([tmp_path / "stars"]) == sorted([a, b])
    assert gather_files([str(tmp_path / "stars" / "**" / "apStar-*.fits"), a]) == [a]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my files\n{a.relative_to(tmp_path)}\n\n{b}\n")
    assert gather_files([f"@{listing}"]) == sorted([a, b])
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        gather_files([tmp_path / "nothing-here*.fits"])


def test_match_files_to_rows():
    identities = [
        SpectrumIdentity("A", "apo25m", "F1"),
        SpectrumIdentity("A", "lco25m", "F2"),
        SpectrumIdentity("B"),
        SpectrumIdentity("B"),
    ]
    table = {
        "apogee_id": np.array(["A", "A", "B", "C", "", "A"], dtype=object),
        "telescope": np.array(["lco25m", "apo25m", "apo25m", "apo25m", "", "apo1m"], dtype=object),
    }
    row_file, n_ambiguous = match_files_to_rows(table, identities)
    # row 5's telescope matches no file: falls back on the ID (ambiguous, first in order)
    assert_array_equal(row_file, [1, 0, 2, -1, -1, 0])
    assert n_ambiguous == 2
    row_file, _ = match_files_to_rows({"apogee_id": table["apogee_id"]}, identities)
    assert_array_equal(row_file, [0, 0, 2, -1, -1, 0])


def test_plan_blocks_cover_every_row_once():
    row_file = np.array([-1, 0, 1, -1, -1, 2, 3, 4, -1, -1, -1, -1, -1, 5])
    blocks = plan_blocks(row_file, batch_files=2, max_rows=4)
    assert blocks[0][0] == 0 and blocks[-1][1] == len(row_file)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert all(b - a <= 4 and (row_file[a:b] >= 0).sum() <= 2 for a, b in blocks)


def test_writer_presence_and_reader_default(tmp_path):
    with SpectraWriter(tmp_path / "p.h5", 3, presence=True, attrs={"note": "x"}) as writer:
        writer.write(0, np.ones((2, N_PIXELS)), np.array([True, False]))
        writer.write(2, np.ones((1, N_PIXELS)))
    with SpectraReader(tmp_path / "p.h5") as reader:
        assert_array_equal(reader.has_spectrum, [True, False, True])
        assert reader.attrs["note"] == "x"
    with SpectraWriter(tmp_path / "plain.h5", 2) as writer:
        writer.write(0, np.ones((2, N_PIXELS)))
        with pytest.raises(SpectraError, match="presence=True"):
            writer.write(0, np.ones((2, N_PIXELS)), np.ones(2, bool))
    with SpectraReader(tmp_path / "plain.h5") as reader:
        assert_array_equal(reader.has_spectrum, [True, True])


# ---------------------------------------------------------------- end to end


def write_table(path, ids) -> None:
    pd.DataFrame({"APOGEE_ID": list(ids), "K": np.arange(len(ids), dtype=float)}).to_parquet(path)


@pytest.mark.realdata
def test_cli_ingest_with_table(realdata, tmp_path, capsys):
    table = tmp_path / "table.parquet"
    write_table(table, [IDS[1], MISSING_ID, IDS[0]])
    out = tmp_path / "out" / "spectra.h5"
    files = [str(real_apstar(realdata, i)) for i in IDS]
    argv = ["ingest", "spectra", "--apstar", *files, "--out", str(out), "--table", str(table)]
    assert main([*argv, "--scheduler", "synchronous", "--quiet"]) == 0
    assert "per 1,000 spectra" in capsys.readouterr().out
    with SpectraReader(out, expected_rows=3) as reader:
        assert_array_equal(reader.has_spectrum, [True, False, True])
        spectra = reader.read_rows(np.arange(3))
    assert np.all(spectra[1] == 1.0)
    for row, apogee_id in ((0, IDS[1]), (2, IDS[0])):
        assert abs(np.median(spectra[row]) - 1) < 0.03
        mask = apstar_to_grid(read_spectrum(real_apstar(realdata, apogee_id)).mask)
        assert np.all(spectra[row][bad_pixel_mask(mask)] == 1.0)
    rows_path, record_path = sidecar_paths(out)
    rows = pd.read_parquet(rows_path)
    assert list(rows["apogee_id"]) == [IDS[1], MISSING_ID, IDS[0]]
    assert list(rows["has_spectrum"]) == [True, False, True]
    assert rows["file"][1] == "" and rows["file"][0].endswith(f"{IDS[1]}.fits")
    assert rows["n_bad_pixels"][1] == -1 and (rows["n_bad_pixels"][[0, 2]] > 0).all()
    record = json.loads(record_path.read_text())
    assert record["n_rows"] == 3 and record["n_with_spectrum"] == 2 and record["n_without_spectrum"] == 1
    assert record["config"]["bad_bits"] == list(DEFAULT_BAD_BITS)


@pytest.mark.realdata
def test_ingest_without_table_on_a_local_cluster(realdata, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "spectra.h5"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        argv = ["ingest", "spectra", "--apstar", str(realdata / "spectra"), "--out", str(out)]
        assert main([*argv, "--scheduler", cluster.scheduler_address, "--quiet", "--batch-files", "1"]) == 0
    rows = pd.read_parquet(sidecar_paths(out)[0])
    assert list(rows["apogee_id"]) == list(IDS)  # sorted file order, one row per apStar file
    assert list(rows["field"]) == ["000+02", "K04_083+13"]
    with SpectraReader(out, expected_rows=2) as reader:
        assert reader.has_spectrum.all()
        reference = ingest_spectra([real_apstar(realdata, i) for i in IDS], tmp_path / "ref.h5",
                                   scheduler="synchronous", **QUIET)  # fmt: skip
        assert reference["n_with_spectrum"] == 2
        with SpectraReader(tmp_path / "ref.h5") as expected:
            assert_array_equal(reader.read_rows(np.arange(2)), expected.read_rows(np.arange(2)))


@pytest.mark.realdata
def test_cli_unreadable_file_stops_or_is_skipped(realdata, tmp_path, capsys):
    bad = write_apstar(tmp_path / "apStar-dr17-2M77777777+7777777.fits", n_pixels=8000)
    out = tmp_path / "spectra.h5"
    argv = ["ingest", "spectra", "--apstar", str(real_apstar(realdata, IDS[0])), str(bad), "--out", str(out)]
    argv += ["--scheduler", "synchronous", "--quiet"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert bad.name in message and "(8000,)" in message and "8575" in message
    assert not out.exists() and not list(tmp_path.glob(".spectra.h5*"))  # nothing half-written
    assert main([*argv, "--skip-unreadable"]) == 0
    rows = pd.read_parquet(sidecar_paths(out)[0])
    with SpectraReader(out) as reader:
        assert_array_equal(reader.has_spectrum, rows["file"] != str(bad))  # rows in sorted path order
        assert reader.has_spectrum.sum() == 1
    record = json.loads(sidecar_paths(out)[1].read_text())
    assert len(record["unreadable"]) == 1 and record["unreadable"][0]["file"] == str(bad)


@pytest.mark.realdata
def test_cli_npz_with_wavelength_grid(realdata, tmp_path):
    out = tmp_path / "payne.h5"
    argv = ["ingest", "spectra", "--apstar", str(realdata / "spectra/ThePayne_aspcap-grid_*.npz"), "--out", str(out)]
    argv += ["--wavelength", str(realdata / "spectra/ThePayne_apogee_wavelength_7214.npz")]
    assert main([*argv, "--scheduler", "synchronous", "--quiet"]) == 0
    with SpectraReader(out) as reader:
        spectrum = reader.read_rows(np.array([0]))[0]
        assert reader.has_spectrum.all() and reader.n_rows == 1
    assert abs(np.median(spectrum) - 1) < 0.02
    assert np.all(spectrum[:76] == 1.0)  # the 7,514 grid starts 76 pixels blueward of ASPCAP's 7,214 grid
    assert pd.read_parquet(sidecar_paths(out)[0])["apogee_id"][0] == "2M13012770+5754582"
    assert len(spectrum) == N_PIXELS
