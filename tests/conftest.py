"""Shared fixtures: tiny VOC trees, the shared real reference data, MLflow stores (a sqlite file, a real server on
PostgreSQL), a copy of the workflow."""

import os
import signal
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image

from wsss.io import save_label_png

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

W, H = 16, 12  # size of every tiny test image

# id -> (classes painted in its mask, object names listed in its XML)
TINY_VOC = {
    "2007_000001": ([1], ["aeroplane"]),
    "2007_000002": ([15, 12], ["person", "dog"]),
    "2007_000003": ([7], ["car", "person"]),  # the person is in the XML only (e.g. difficult, unsegmented)
    "2007_000004": ([5], ["bottle"]),
    "2007_000005": ([20, 9], ["tvmonitor", "chair"]),
    "2007_000006": ([3], ["bird"]),
}
TINY_SPLITS = {
    "train": ["2007_000001", "2007_000002", "2007_000003"],
    "val": ["2007_000004", "2007_000005"],
    "train_aug": ["2007_000001", "2007_000002", "2007_000003", "2007_000006"],
}


def write_image(path: Path, size=(W, H), seed=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def tiny_mask(classes, size=(W, H)) -> np.ndarray:
    """Vertical bands, one per class, on background, with a void (255) column between them."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    for k, cls in enumerate(classes):
        mask[:, 2 + 6 * k: 6 + 6 * k] = cls
        mask[:, 6 + 6 * k] = 255
    return mask


def write_xml(path: Path, names) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(
        f"<object><name>{n}</name><difficult>{int(i > 0)}</difficult>"
        f"<part><name>head</name></part></object>" for i, n in enumerate(names))
    path.write_text(f"<annotation><filename>x.jpg</filename><owner><name>someone</name></owner>{objects}</annotation>")


def write_voc_tree(root: Path, samples=TINY_VOC, splits=TINY_SPLITS, mask_dir="SegmentationClass") -> Path:
    """A VOC2012-layout tree: JPEGImages, masks, Annotations and ImageSets/Segmentation lists."""
    for n, (image_id, (classes, names)) in enumerate(samples.items()):
        write_image(root / "JPEGImages" / f"{image_id}.jpg", seed=n)
        (root / mask_dir).mkdir(parents=True, exist_ok=True)
        save_label_png(root / mask_dir / f"{image_id}.png", tiny_mask(classes))
        write_xml(root / "Annotations" / f"{image_id}.xml", names)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_sbd(root, masks, train, val):
    """SBD's dataset/ folder: cls/<id>.mat with a GTcls struct, train.txt, val.txt."""
    (root / "cls").mkdir(parents=True)
    for image_id, mask in masks.items():
        gt = {"Segmentation": mask, "CategoriesPresent": np.unique(mask[(mask > 0) & (mask < 255)])}
        scipy.io.savemat(root / "cls" / f"{image_id}.mat", {"GTcls": gt})
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "val.txt").write_text("\n".join(val) + "\n")
    return root


@pytest.fixture
def voc_root(tmp_path) -> Path:
    return write_voc_tree(tmp_path / "VOC2012")


@pytest.fixture
def shared_voc() -> Path:
    root = SHARED_DATA / "voc2012"
    if not root.is_dir():
        pytest.skip(f"real VOC reference data not found at {root} (only present next to the project's shared folder)")
    return root


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite store created once per session (creating one runs 1.5 s of migrations)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, migrated_mlflow_db) -> str:
    """A per-test copy of the migrated store, visible to this process and to subprocesses."""
    import shutil

    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_mlflow_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    mlflow.end_run()


@pytest.fixture
def one_thread():
    """Tiny nets gain nothing from threads, and a busy 2-core machine makes OpenMP barriers slow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


BIN = Path(sys.executable).parent
PROJECT_FILES = ("Snakefile", "params.yaml", "dvc.yaml", "workflow", ".dvc/config", ".dvcignore", ".gitignore")
TINY = {"synth_voc": {"train": 6, "val": 4, "train_aug": 10, "size": 48},
        "synth_sod": {"train": 6, "test": 4, "size": 48},
        "profiles": {"smoke": {"train_cls": {"batch": 4, "epochs": 1, "crop": 32, "resize_long": [32, 48]},
                               "infer_cam": {"scales": [1.0]},
                               "train_seg": {"batch": 4, "iterations": 3, "crop": 32},
                               "affinity": {"batch": 4, "epochs": 1, "crop": 32},
                               "ldf": {"batch": 2, "epochs": 1, "fine_epochs": 1, "width": 8, "train_sizes": [32],
                                       "test_size": 32}}}}


def copy_workflow(root: Path) -> Path:
    """The project's workflow files (Snakefile, params.yaml, dvc.yaml, rules, DVC config) copied into ``root``."""
    for name in PROJECT_FILES:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    return root


@pytest.fixture
def project(tmp_path, mlflow_uri):
    """A copy of the workflow in a fresh git repository, with tiny synthetic datasets."""
    from wsss.config import deep_merge

    root = copy_workflow(tmp_path / "project")
    params = deep_merge(yaml.safe_load((root / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command, cwd):
    """Run a command of the venv in ``cwd``; its output, or a failure showing the end of both streams."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


# A real MLflow server on PostgreSQL (tests/services/postgres.sh), for tests/test_mlflow_server.py and test_slurm.py.
PG = {"host": "127.0.0.1", "port": 5432, "user": "wsss", "password": "wsss", "dbname": "mlflow_test"}
STARTUP_S = 180  # the first start runs MLflow's schema migrations on the new database (~20 s on an idle machine)


def postgres_answers() -> bool:
    """Whether something listens on PostgreSQL's test address."""
    try:
        socket.create_connection((PG["host"], PG["port"]), timeout=2).close()
        return True
    except OSError:
        return False


def mlflow_server_skip_reason() -> str | None:
    """Why no MLflow server on PostgreSQL can start here, or None."""
    if not postgres_answers():
        return (f"no PostgreSQL answers on {PG['host']}:{PG['port']} "
                "(tests/services/postgres.sh starts one; ./run test calls it)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[test]')"
    return None


def postgres_admin(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(**PG)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def wait_healthy(uri: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server {uri} not healthy after {STARTUP_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a fresh PostgreSQL database: (tracking URI, artifact root); stopped at the end."""
    if reason := mlflow_server_skip_reason():
        pytest.skip(reason)
    database = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    postgres_admin(f"CREATE DATABASE {database}")
    root = tmp_path_factory.mktemp("mlflow_server")
    artifacts, log = root / "artifacts", root / "server.log"
    port = closed_port()  # free now; the server binds it a moment later
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("w") as out:
        server = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri",
             f"postgresql://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{database}",
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(uri, server, log)
        yield uri, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the CLI and its uvicorn worker
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def all_runs(uri: str) -> list:
    """Every run of every experiment of the tracking server at ``uri``."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    return [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id], max_results=1000)]
