"""How long `hac data prepare` takes per dataset, written as JSON.

    python benchmarks/prepare_speed.py --out prepare_speed.json [--shared-data ../shared/data] [--no-scale]

For every source it measures the wall time of the real command (a fresh `hac` process: interpreter
start, imports, reading, lists, Parquet, sha256 of the sources) and the in-process time of
``prepare()`` alone. The 100k-rating case is ML-100K (exactly 100,000 ratings); its in-process time
is extrapolated linearly to ML-1M's 1,000,209 ratings. Unless ``--no-scale``, a full-size ML-1M
ratings file and a 1M-row KuaiRand log are *generated* (random, in the real schemas, in a temporary
folder: no real data is copied) to measure those sizes directly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ML1M_RATINGS = 1_000_209
KUAIRAND_1K_STANDARD_ROWS = 11_713_045


def _cli(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "from hac_rllib.cli import main; main()", "data", "prepare", *args],
        capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"hac data prepare {' '.join(args)} failed:\n{proc.stderr}")
    return wall, proc.stdout.strip()


def _in_process(name: str, out: Path, **kw) -> float:
    from envs.data.prepare import prepare

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(name, out, overwrite=True, **kw)
    return time.perf_counter() - start


def _link(dst: Path, pairs: dict[str, Path]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name, target in pairs.items():
        (dst / name).symlink_to(target)
    return dst


def _generated_ml1m(folder: Path, shared: Path) -> Path:
    """ML-1M-shaped ratings.dat with 1,000,209 random ratings; official movies/users beside it (links)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    users = rng.integers(1, 6041, size=ML1M_RATINGS)
    users.sort()
    movie_ids = pd.read_csv(shared / "ml1m-sample" / "movies.dat", sep="\t", header=None, encoding="latin-1")[0].str.split("::").str[0].astype(int).to_numpy()
    items = rng.choice(movie_ids, size=ML1M_RATINGS)
    ts = 956_703_932 + rng.integers(0, 89_750_000, size=ML1M_RATINGS)
    frame = pd.DataFrame({"u": users, "i": items, "r": rng.integers(1, 6, size=ML1M_RATINGS), "t": ts})
    folder.mkdir(parents=True)
    text = frame.to_csv(sep="\t", header=False, index=False).replace("\t", "::")
    (folder / "ratings.dat").write_text(text)
    for name in ("movies.dat", "users.dat"):
        (folder / name).symlink_to(shared / "ml1m-sample" / name)
    return folder


def _generated_kuairand(folder: Path, shared: Path, rows: int) -> Path:
    """A KuaiRand log with its 19 columns and ``rows`` random rows over the 7,583 Pure videos, named as the
    Pure standard log; the official Pure feature tables beside it (links)."""
    import numpy as np
    import pandas as pd

    from envs.data.readers.kuairand import LOG_COLUMNS

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: np.zeros(rows, dtype=np.int64) for c in LOG_COLUMNS})
    frame["user_id"] = np.sort(rng.integers(0, 1000, size=rows))
    frame["video_id"] = np.minimum(rng.zipf(1.3, size=rows) - 1, 7582)
    frame["time_ms"] = 1_649_376_000_000 + rng.integers(0, 2_678_400_000, size=rows)
    frame["duration_ms"] = rng.integers(5_000, 60_000, size=rows)
    frame["play_time_ms"] = (frame["duration_ms"] * rng.random(rows) * 1.2).astype(np.int64)
    frame["date"], frame["hourmin"], frame["tab"] = 20220408, 1200, 1
    folder.mkdir(parents=True)
    frame.to_csv(folder / "log_standard_4_08_to_4_21_pure.csv", index=False)
    for name in ("user_features_pure.csv", "video_features_basic_pure.csv"):
        (folder / name).symlink_to(shared / "kuairand" / name)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--no-scale", action="store_true", help="skip the generated full-size inputs")
    ap.add_argument("--kuairand-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    shared = args.shared_data.resolve()
    if not shared.is_dir():
        sys.exit(f"no real data at {shared}; pass --shared-data")

    results: dict = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="hac-prepare-speed-") as tmp_name:
        tmp = Path(tmp_name)
        kr_src = _link(
            tmp / "kuairand-src",
            {
                "log_random_4_22_to_5_08_pure.csv": shared / "kuairand" / "log_random_4_22_to_5_08_1k.csv",
                "user_features_pure.csv": shared / "kuairand" / "user_features_pure.csv",
                "video_features_basic_pure.csv": shared / "kuairand" / "video_features_basic_pure.csv",
            },
        )
        cases = {
            "ml1m (ml1m-sample, 43,745 ratings)": ("ml1m", ["--source", str(shared / "ml1m-sample")], {"source": shared / "ml1m-sample"}),
            "ml100k (100,000 ratings)": ("ml100k", ["--source", str(shared / "ml100k")], {"source": shared / "ml100k"}),
            "ml-latest-small (100,836 ratings)": ("ml-latest-small", ["--source", str(shared / "ml-latest-small")], {"source": shared / "ml-latest-small"}),
            "rl4rs (63 sample rows)": ("rl4rs", ["--source", str(shared / "rl4rs")], {"source": shared / "rl4rs"}),
            "kuairand-pure (log_random 43,028 rows + Pure feature tables, --core 5)": (
                "kuairand-pure",
                ["--source", str(kr_src), "--include-random-log", "--core", "5"],
                {"source": kr_src, "include_random_log": True, "core": 5},
            ),
            "synthetic (default: 100,000 lists)": ("synthetic", [], {}),
        }
        for label, (name, cli_args, kw) in cases.items():
            wall, summary = _cli([name, "--out", str(tmp / f"cli-{name}"), *cli_args])
            inproc = _in_process(name, tmp / f"py-{name}", **kw)
            results["cases"][label] = {"cli_wall_s": round(wall, 3), "in_process_s": round(inproc, 3), "summary": summary}
            print(f"{label:75s} cli {wall:6.2f} s   in-process {inproc:6.2f} s", flush=True)

        t100k = results["cases"]["ml100k (100,000 ratings)"]["in_process_s"]
        cli100k = results["cases"]["ml100k (100,000 ratings)"]["cli_wall_s"]
        results["ml_100k_ratings"] = {
            "in_process_s": t100k,
            "cli_wall_s": cli100k,
            "extrapolated_ml1m_1000209_in_process_s": round(t100k * ML1M_RATINGS / 100_000, 2),
            "extrapolated_ml1m_cli_wall_s": round((cli100k - t100k) + t100k * ML1M_RATINGS / 100_000, 2),
            "method": "linear in the number of ratings; the CLI adds its fixed start-up cost once",
        }
        if not args.no_scale:
            src = _generated_ml1m(tmp / "ml1m-generated", shared)
            wall, summary = _cli(["ml1m", "--source", str(src), "--out", str(tmp / "cli-ml1m-full")])
            inproc = _in_process("ml1m", tmp / "py-ml1m-full", source=src)
            results["generated_full_size"] = {
                "ml1m_1000209_ratings": {"cli_wall_s": round(wall, 3), "in_process_s": round(inproc, 3), "summary": summary}
            }
            print(f"{'ml1m generated full size (1,000,209 ratings)':75s} cli {wall:6.2f} s   in-process {inproc:6.2f} s", flush=True)
            src = _generated_kuairand(tmp / "kr-generated", shared, args.kuairand_rows)
            wall, summary = _cli(["kuairand-pure", "--source", str(src), "--out", str(tmp / "cli-kr-gen")])
            inproc = _in_process("kuairand-pure", tmp / "py-kr-gen", source=src)
            results["generated_full_size"][f"kuairand_{args.kuairand_rows}_rows"] = {
                "cli_wall_s": round(wall, 3),
                "in_process_s": round(inproc, 3),
                "extrapolated_kuairand_1k_11713045_rows_s": round(inproc * KUAIRAND_1K_STANDARD_ROWS / args.kuairand_rows, 1),
                "summary": summary,
            }
            print(f"{f'kuairand generated log ({args.kuairand_rows:,} rows, 50-core)':75s} cli {wall:6.2f} s   in-process {inproc:6.2f} s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
