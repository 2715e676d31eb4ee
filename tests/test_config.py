"""The configuration tree: TOML sections ↔ dataclasses, strict keys and types, round trips, CLI precedence."""

from __future__ import annotations

import pytest

from zpdist.cli.main import main
from zpdist.config import (
    ConfigError,
    PredictConfig,
    TrainConfig,
    ZpdistConfig,
    config_path_beside,
    load_config,
    write_config,
)
from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.selection import MapCuts, TrainingCuts


def test_defaults_and_sections(tmp_path):
    assert load_config(None) == ZpdistConfig()
    path = tmp_path / "cuts.toml"
    path.write_text(
        '[training]\nmin_snr = 100\nrequire_starflag_zero = false\n[maps]\nelement = "mg_fe"\n'
        '[train]\nepochs = 3\nlabel_columns = ["teff", "logg"]\n[predict]\nmc_samples = 10\n[frame]\nr0_kpc = 8.2\n'
    )
    config = load_config(path)
    assert config.training == TrainingCuts(min_snr=100.0, require_starflag_zero=False)
    assert config.maps == MapCuts(element="mg_fe")
    assert config.train.epochs == 3 and config.train.label_columns == ("teff", "logg")
    assert config.train.cuts == config.training  # the trainer's cuts are the [training] section
    assert config.predict == PredictConfig(mc_samples=10)
    assert config.frame == GalactocentricFrameConfig(r0_kpc=8.2)


def test_round_trip_through_toml(tmp_path):
    config = ZpdistConfig(training=TrainingCuts(min_snr=80.0)).replace("train", seed=3, label_columns=("teff", "fe_h"))
    path = write_config(config, tmp_path / "zpdist.toml")
    assert load_config(path) == config
    assert config_path_beside(tmp_path / "catalog.parquet") == tmp_path / "catalog.zpdist.toml"


def test_replace_ignores_options_not_given():
    config = ZpdistConfig().replace("train", epochs=None, seed=5)
    assert config.train.epochs == TrainConfig().epochs and config.train.seed == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[training]\nmin_snrr = 100\n", r"cuts\.toml: unknown key 'min_snrr' in \[training\]; known keys: max_paral"),
        ("[maps]\nmax_abs_z = 0.3\nsigma = 1\n", r"cuts\.toml: unknown key 'sigma' in \[maps\]"),
        ("[trian]\nepochs = 1\n", r"cuts\.toml: unknown section\(s\) \[trian\]"),
        ("[training]\nmin_snr = 'high'\n", r"cuts\.toml: \[training\] min_snr = 'high' must be a float"),
        ("[training]\nrequire_starflag_zero = 1\n", r"require_starflag_zero = 1 must be a bool"),
        ("[training]\nmin_visibility_periods = 8.5\n", r"min_visibility_periods = 8.5 must be a int"),
        ("[maps]\nelement = 'xx'\n", r"cuts\.toml: \[maps\]: unknown map element 'xx'"),
        ("[train]\nbatch_size = -1\n", r"cuts\.toml: \[train\]: batch_size = -1: must be a finite number in \(0, "),
        ("[train]\nlearning_rate = nan\n", r"\[train\] learning_rate = nan must be finite"),
        ("[predict]\nmc_samples = 1\n", r"mc_samples = 1: at least 2 Monte-Carlo passes"),
        ("[training\n", r"cuts\.toml: not valid TOML"),
    ],
)
def test_bad_files_name_file_section_and_key(tmp_path, text, message):
    path = tmp_path / "cuts.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--table", "t.fits", "--out", "r", "--batch-size", "0"],
        ["train", "--table", "t.fits", "--out", "r", "--epochs", "-1"],
        ["train", "--table", "t.fits", "--out", "r", "--patience", "-1"],
        ["train", "--table", "t.fits", "--out", "r", "--learning-rate", "nan"],
        ["predict", "--run", "r", "--table", "t", "--out", "c.parquet", "--mc-samples", "1"],
        ["predict", "--run", "r", "--table", "t", "--out", "c.parquet", "--r0-kpc", "nan"],
        ["mock", "--out", "m", "--n-stars", "0"],
        ["mock", "--out", "m", "--offset-uas", "nan"],
    ],
)
def test_out_of_range_options_fail_before_work(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"zpdist {argv[0]}: error: argument --")


def test_config_file_error_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 'many'\n")
    assert main(["train", "--table", "t.fits", "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.toml: [train] epochs = 'many' must be a int" in err
