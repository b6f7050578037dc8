"""Several processes (issue 18): ``torchrun --nproc_per_node 2 -m unires ...`` on CPU (gloo)
against one process, on the tiny model: every file done exactly once, the same bytes, the same
records and tables, one error line per bad file, the same exit code on every process.

One launch runs the whole sequence of commands (``_LAUNCHER`` below: the process group is set
up once, so the multi-process checks take seconds); each test checks one part of it.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from unires.cli import main
from unires.parallel import SINGLE, Processes, files_written, launched_processes

# Runs several `unires` commands in one launch and logs each image a command writes as
# "<command> <rank> <path>" (appends of one short line: the processes' lines never mix).
_LAUNCHER = """
import json, os, sys
import unires.io as uio
from unires.cli import main
from unires.parallel import processes

rank, command, depth = os.environ.get("RANK", "0"), [0], [0]
log = open(os.environ["UNIRES_TEST_WRITES"], "a")

def counted(write):
    def wrapper(path, *args, **kwargs):
        depth[0] += 1  # write_frames calls write_image: count the outer call only
        try:
            out = write(path, *args, **kwargs)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            log.write(f"{command[0]} {rank} {path}\\n")
            log.flush()
        return out
    return wrapper

uio.write_frames, uio.write_image = counted(uio.write_frames), counted(uio.write_image)
codes = []
for i, argv in enumerate(json.loads(open(sys.argv[1]).read())):
    command[0] = i
    codes.append(main(argv))
with open(f"{sys.argv[2]}.{rank}", "w") as f:
    json.dump(codes, f)
processes().barrier()  # both code files written before either process exits
sys.exit(max(codes))
"""

SEARCH_GRID = ["--grid", "custom", "--tasks", "md,dn,downlq", "--vmin", "0", "--vmax", "1"]
SEARCH_GRID += ["--step", "0.5", "--metric", "piqe"]  # 6 candidates
# 35 candidates: two chunks of the batched search (32 + 3), one per process.
BIG_GRID = ["--grid", "custom", "--tasks", "sr,md,dn,downlq", "--vmin", "0", "--vmax", "1"]
BIG_GRID += ["--step", "0.25", "--metric", "piqe"]
GOOD = 6


def _photo(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(path)
    return path


def _sets(root: Path) -> Path:
    from unires.degrade.writer import write_degraded_set

    hq = root / "hq"
    hq.mkdir(parents=True)
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(2):
        img = np.stack([np.sin(xx / (4.0 + i)), np.cos(yy / (6.0 + i)), np.sin((xx + yy) / 8)], -1)
        Image.fromarray(((img + 1) * 120).astype(np.uint8)).save(hq / f"im{i}.png")
    write_degraded_set(hq, root / "noise", "noise", seed=0)
    return root / "noise"


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """One process (in this one) and two (one torchrun launch) on the same inputs."""
    root = tmp_path_factory.mktemp("parallel")
    photos = [_photo(root / "photos" / f"im{i}.png", i) for i in range(GOOD)]
    good = photos[0].read_bytes()
    (root / "photos" / "bad.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    bench_set = _sets(root / "sets")
    model = ["--model", str(tiny_model_dir), "--device", "cpu", "--dtype", "fp32"]

    def restore(out: str) -> list[str]:
        return ["restore", str(root / "photos"), "-o", str(root / out), "--steps", "2", *model]

    def search(out: str, files: list[Path], grid: list[str]) -> list[str]:
        argv = ["search", *map(str, files), "-o", str(root / out), *grid, "--steps", "2", "-q"]
        return argv + model

    def bench(out: str) -> list[str]:
        argv = ["bench", "run", str(bench_set), "--out", str(root / out), "--steps", "1"]
        argv += ["--one-hot", "dn,sr", "--weights", "md=0.5,dn=0.5", "--peers", "unsharp-mask"]
        return argv + model

    # One process, in this one.
    assert main([*restore("one"), "-q"]) == 1
    assert main(search("search-one", photos[:3], SEARCH_GRID)) == 0
    assert main(search("big-one", photos[:1], BIG_GRID)) == 0
    assert main(bench("bench-one")) == 0
    # A search that two processes left half done: one part table with 5 of the 35 rows.
    with (root / "big-one" / "im0.csv").open() as f:
        head = f.read().splitlines()[:6]
    (root / "big-resumed").mkdir()
    (root / "big-resumed" / "im0.csv.part1").write_text("\n".join(head) + "\n")

    commands = [
        restore("two"),  # with the progress bar: the main process's bar follows both
        [*restore("two"), "--skip-existing", "-q"],
        search("search-two", photos[:3], SEARCH_GRID),
        search("big-two", photos[:1], BIG_GRID),
        search("big-resumed", photos[:1], BIG_GRID),
        bench("bench-two"),
    ]
    (root / "commands.json").write_text(json.dumps(commands))
    (root / "launch.py").write_text(_LAUNCHER)
    writes = root / "writes.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env["UNIRES_TEST_WRITES"] = str(writes)
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    cmd += [str(root / "launch.py"), str(root / "commands.json"), str(root / "codes")]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=600, cwd=root)
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    codes = {r: json.loads((root / f"codes.{r}").read_text()) for r in (0, 1)}
    log = [line.split(" ", 2) for line in writes.read_text().splitlines()]
    return SimpleNamespace(root=root, returncode=proc.returncode, out=out, err=err, codes=codes,
                           writes=log)  # fmt: skip


def _written(runs, command: int) -> list[str]:
    return sorted(Path(path).name for i, _, path in runs.writes if int(i) == command)


def test_restore_two_processes_each_file_once_same_bytes(runs):
    assert runs.returncode == 1, runs.err[-3000:]
    assert runs.codes[0][0] == runs.codes[1][0] == 1  # a file failed: 1 on every process
    names = [f"im{i}.png" for i in range(GOOD)]
    assert _written(runs, 0) == names  # each good file exactly once
    ranks = {rank for i, rank, _ in runs.writes if int(i) == 0}
    assert ranks == {"0", "1"}  # both did some
    for name in names:
        assert (runs.root / "two" / name).read_bytes() == (runs.root / "one" / name).read_bytes()
    assert not (runs.root / "two" / "bad.png").exists()
    assert list((runs.root / "two").glob(".*")) == []  # no temporary file left
    bad = str(runs.root / "photos" / "bad.png")
    # Named once per run (two runs: the restore and its rerun), by the process that had it.
    assert runs.err.count(f"error: {bad}:") == 2, runs.err[-3000:]
    assert runs.err.count(f"{GOOD} restored, 0 skipped, 1 failed; outputs in") == 1


def test_restore_two_processes_rerun_with_skip_existing_restores_nothing(runs):
    assert runs.codes[0][1] == runs.codes[1][1] == 1  # the bad file still fails
    assert _written(runs, 1) == []
    assert runs.err.count(f"0 restored, {GOOD} skipped, 1 failed; nothing written") == 1


def _records(folder: Path) -> dict[str, dict]:
    """Each search record without what differs between runs: seconds and the folder (and
    the folder's fingerprint.json, the same for both)."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text().replace(str(folder), "OUT"))
        record.pop("seconds", None)
        records[path.name] = record
    return records


def test_search_two_processes_split_images_same_records(runs):
    assert runs.codes[0][2] == runs.codes[1][2] == 0
    one, two = runs.root / "search-one", runs.root / "search-two"
    assert _records(two) == _records(one) and len(_records(one)) == 4  # 3 + fingerprint
    for name in ("im0.csv", "im1.csv", "im2.csv", "im0.png", "im1.png", "im2.png"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert _written(runs, 2) == ["im0.png", "im1.png", "im2.png"]  # one write per image
    assert {rank for i, rank, _ in runs.writes if int(i) == 2} == {"0", "1"}
    assert runs.out.count("3 searched, 0 failed") == 1


def test_search_two_processes_split_one_images_candidates(runs):
    """One image, two processes: each restores its chunks of the 35 candidates; the merged
    table and the best image are those of one process, bit for bit."""
    assert runs.codes[0][3] == runs.codes[1][3] == 0
    one, two = runs.root / "big-one", runs.root / "big-two"
    assert (two / "im0.csv").read_bytes() == (one / "im0.csv").read_bytes()
    assert (two / "im0.png").read_bytes() == (one / "im0.png").read_bytes()
    a, b = _records(one)["im0.json"], _records(two)["im0.json"]
    # Each process evaluates the shared first step itself: a few more UNet evaluations.
    assert b.pop("evaluations") > a.pop("evaluations")
    assert a == b and a["candidates"] == a["computed"] == 35
    assert _written(runs, 3) == ["im0.png"]
    assert {rank for i, rank, _ in runs.writes if int(i) == 3} == {"0"}  # the main one writes
    assert list(two.glob("*.part*")) == []


def test_search_split_candidates_resumes_from_part_tables(runs):
    from unires.search.grid import read_score_table

    assert runs.codes[0][4] == runs.codes[1][4] == 0
    record = json.loads((runs.root / "big-resumed" / "im0.json").read_text())
    assert (record["reused"], record["computed"]) == (5, 30)
    one = read_score_table(runs.root / "big-one" / "im0.csv")
    resumed = read_score_table(runs.root / "big-resumed" / "im0.csv")
    assert resumed.keys() == one.keys()
    # Float noise only: the resumed run batches its candidates otherwise (Denoiser._network).
    assert list(resumed.values()) == pytest.approx(list(one.values()), rel=1e-5, abs=1e-5)
    assert list((runs.root / "big-resumed").glob("*.part*")) == []  # folded into the table


def _without_seconds(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert float(row.pop("seconds")) >= 0  # a timing: differs between any two runs
    return rows


def test_bench_run_two_processes_same_csv(runs):
    assert runs.codes[0][5] == runs.codes[1][5] == 0
    one, two = runs.root / "bench-one", runs.root / "bench-two"
    rows = _without_seconds(two / "bench.csv")
    assert rows == _without_seconds(one / "bench.csv")
    assert len(rows) == 2 * 5  # 2 images x (LQ, 2 one-hot, 1 weight set, unsharp-mask)
    assert runs.out.count("restored, 0 read back; table:") == 1  # printed by the main one


def test_one_process_without_a_launcher_costs_nothing():
    """No launcher: ``SINGLE``, accelerate not even imported; collectives are identities."""
    code = (
        "import sys; from unires.parallel import processes, SINGLE; "
        "assert processes('cpu') is SINGLE; print('accelerate' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "PMI_SIZE")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)
    assert done.stdout.decode().strip() == "False", done.stderr.decode()[-2000:]
    assert SINGLE.share([3, 1, 2]) == [3, 1, 2] and SINGLE.gather("x") == ["x"]
    assert SINGLE.broadcast({"a": 1}) == {"a": 1} and SINGLE.total(4) == 4
    assert SINGLE.device_for("auto") == "auto" and SINGLE.is_main and not SINGLE.parallel


def test_shares_take_every_item_exactly_once():
    items = list(range(11))
    shares = [Processes(index=i, count=3, device="cpu").share(items) for i in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(x for s in shares for x in s) == items
    gpu = Processes(index=1, count=2, local_index=1, device="cuda:1")
    assert gpu.device_for("auto") == gpu.device_for("cuda") == "cuda:1"
    assert gpu.device_for("cpu") == "cpu" and gpu.device_for("cuda:0") == "cuda:0"


def test_launched_processes_reads_the_launcher(monkeypatch, tmp_path, capsys):
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launched_processes() == 1
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_processes() == 4
    monkeypatch.setenv("WORLD_SIZE", "four")
    src = _photo(tmp_path / "a.png", 0)
    assert main(["restore", str(src), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "WORLD_SIZE='four'" in err and len(err.strip().splitlines()) == 1


def test_files_written_counts_new_and_replaced_files(tmp_path):
    from unires.utils import atomic_write_text

    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text("before")
    count = files_written([old, new])
    assert count() == 0
    atomic_write_text(new, "x")
    assert count() == 1
    atomic_write_text(old, "after")  # replaced: a new file there
    assert count() == 2


def test_progress_shows_the_whole_job_on_the_main_process(tmp_path):
    import io

    from tqdm import tqdm

    bar = tqdm(total=3, file=io.StringIO())
    with SINGLE.progress(bar) as advance:  # one process: its own items
        advance()
        advance()
    assert bar.n == 2
    outputs = [tmp_path / f"{i}.png" for i in range(3)]
    main_bar, other_bar = tqdm(total=3, file=io.StringIO()), tqdm(total=3, file=io.StringIO())
    main, other = Processes(0, 2, device="cpu"), Processes(1, 2, device="cpu")
    count = files_written(outputs)
    with main.progress(main_bar, count, every=0.01) as advance:
        outputs[1].write_bytes(b"written by the other process")
        advance()  # looks at the disk: what the other process wrote counts too
        assert main_bar.n == 1
        outputs[0].write_bytes(b"x")
    assert main_bar.n == 2  # looked once more on the way out
    with other.progress(other_bar, count) as advance:
        advance()
    assert other_bar.n == 0
