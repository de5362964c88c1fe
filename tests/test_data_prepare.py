"""`hac data prepare` / `hac data info` end to end: the commands, their warnings and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from envs.data.errors import DataError, OutputExistsError
from envs.data.format import load_meta
from envs.data.info import check_dataset, summarize
from envs.data.prepare import DataWarning, prepare
from envs.data.synthetic import SyntheticParams
from hac_rllib.cli import app

runner = CliRunner()


def test_prepare_and_info_commands_on_ml1m_sample(shared_data, tmp_path):
    out = tmp_path / "ml1m"
    result = runner.invoke(app, ["data", "prepare", "ml1m", "--source", str(shared_data / "ml1m-sample"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "subset of the official release" in result.output and "lists of 10" in result.output
    meta = load_meta(out)
    assert meta["subset"] is True and meta["preprocessing"]["max_history"] == 50
    assert any("subset" in w for w in meta["warnings"])

    result = runner.invoke(app, ["data", "info", str(out)])
    assert result.exit_code == 0, result.output
    for text in ("positive rate", "history mean", "test starts", "2000-", "records"):
        assert text in result.output

    # an existing output directory is refused before any work, and kept as it was
    before = (out / "meta.json").read_text()
    result = runner.invoke(app, ["data", "prepare", "ml1m", "--source", str(shared_data / "ml1m-sample"), "--out", str(out)])
    assert isinstance(result.exception, OutputExistsError) and str(out) in str(result.exception)
    assert (out / "meta.json").read_text() == before
    result = runner.invoke(app, ["data", "prepare", "ml1m", "--source", str(shared_data / "ml1m-sample"), "--out", str(out), "--overwrite", "--k", "5", "--max-history", "7"])
    assert result.exit_code == 0, result.output
    meta = load_meta(out)
    assert meta["k"] == 5 and meta["preprocessing"]["max_history"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml1m"]  # no temporary leftovers


def test_the_hac_entry_point_prints_one_clear_line_and_exits_2(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ratings.dat").write_text("1::10::5::978300760\n1::11::4::x\n")
    (src / "movies.dat").write_text("10::A (1999)::Drama\n11::B (1999)::Drama\n")
    (src / "users.dat").write_text("1::F::1::10::48067\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", "from hac_rllib.cli import main; main()", "data", "prepare", "ml1m", "--source", str(src), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"error: {src / 'ratings.dat'}, line 2: column 'timestamp' is not a number: 'x'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_prepare_needs_a_download_or_a_source(tmp_path):
    with pytest.raises(DataError, match="hac data download ml100k"):
        prepare("ml100k", tmp_path / "out", cache_dir=tmp_path / "empty-cache")
    with pytest.raises(DataError, match="KuaiRand only"):
        prepare("ml100k", tmp_path / "out", source=tmp_path, include_random_log=True)
    with pytest.raises(DataError, match="unknown dataset"):
        prepare("movielens-20m", tmp_path / "out", source=tmp_path)


def test_prepare_synthetic_dispatches_to_the_generator(tmp_path):
    out = prepare("synthetic", tmp_path / "syn", synthetic=SyntheticParams(n_users=30, n_items=50, n_records=400, seed=1), max_history=20)
    meta = load_meta(out)
    assert meta["name"] == "synthetic" and meta["n_train"] + meta["n_test"] == 400 and meta["k"] == 10
    assert meta["preprocessing"]["max_history"] == 20 and (out / "truth.npz").is_file()
    assert check_dataset(out) == []
    with pytest.raises(DataError, match="no --source"):
        prepare("synthetic", tmp_path / "syn2", source=tmp_path)


def test_info_reports_problems_in_a_damaged_directory(tmp_path, small_synthetic):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_synthetic, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["n_train"] += 1
    (copy / "meta.json").write_text(json.dumps(meta))
    assert any("train.parquet has" in p for p in summarize(copy)["problems"])
    result = runner.invoke(app, ["data", "info", str(copy)])
    assert result.exit_code == 1 and "problem:" in result.output
    result = runner.invoke(app, ["data", "info", str(tmp_path / "nothing")])
    assert isinstance(result.exception, DataError) and "meta.json" in str(result.exception)


def test_meta_records_sources_and_preprocessing(shared_data, tmp_path):
    with pytest.warns(DataWarning):
        out = prepare("rl4rs", tmp_path / "rl", source=shared_data / "rl4rs")
    meta = load_meta(out)
    assert set(meta["sources"]) == {"rl4rs_b_train.csv", "rl4rs_b_test.csv", "item_info.csv"}
    assert meta["origin"]["licence"].startswith("CC BY-SA 4.0") and meta["origin"]["redistributable"] is True
    assert meta["preprocessing"]["users"].startswith("one per session_id")
    assert meta["source_counts"] == {"rows": 63, "sessions": 40, "items_listed": 283}
