"""Downloads against a real HTTP server on 127.0.0.1: mirrors in order, every failure moves on, cache once."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from data_support import Mirror, idx_set, sha256s, write_set

import zerodl.progress
from zerodl.data import fetch, read_idx
from zerodl.data.download import download
from zerodl.errors import DataError
from zerodl.progress import DownloadBars

FILES = idx_set()
SHA = sha256s(FILES)
GZ = [f"{name}.gz" for name in FILES]
# Still valid IDX, one pixel or label different: only the checksum can tell.
CORRUPT = {name: data[:-1] + bytes([data[-1] ^ 1]) for name, data in FILES.items()}


@pytest.fixture
def mirror():
    m = Mirror()
    yield m
    m.stop()


def _fetch_mnist(dest, mirrors, **kw):
    dest.mkdir(exist_ok=True)
    return fetch("mnist", dest, mirrors=mirrors, sha256=SHA, timeout=kw.pop("timeout", 5), **kw)


def test_good_download(mirror, tmp_path):
    good = mirror.serve("good", FILES)
    fetched = _fetch_mnist(tmp_path / "raw", [good])
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(GZ)
    for name, data in FILES.items():
        assert gzip.decompress((tmp_path / "raw" / f"{name}.gz").read_bytes()) == data
    assert fetched.manifest["source"] == "mnist"
    assert fetched.manifest["files"]["train-images"] == {
        "file": "train-images-idx3-ubyte.gz", "sha256": SHA["train-images-idx3-ubyte"],
        "bytes": len(FILES["train-images-idx3-ubyte"]), "checksum": "published sha256"}
    assert fetched.origins["t10k-labels-idx1-ubyte.gz"] == f"{good}t10k-labels-idx1-ubyte.gz"
    assert len(mirror.requests) == 4


@pytest.mark.parametrize("behaviour", ["missing", "slow", "corrupt", "short", "html"])
def test_a_failing_first_mirror_falls_through_to_the_next(mirror, tmp_path, behaviour):
    if behaviour == "corrupt":
        bad = mirror.serve("bad", CORRUPT)
    elif behaviour == "html":  # a 200 with an error page instead of the file
        for name in FILES:
            mirror.routes[f"/bad/{name}.gz"] = ("ok", b"<html>Service unavailable</html>")
        bad = f"{mirror.url}/bad/"
    else:
        bad = mirror.serve("bad", FILES, behaviour)  # "missing" routes nothing: 404
    good = mirror.serve("good", FILES)
    fetched = _fetch_mnist(tmp_path / "raw", [bad, good], timeout=0.3)
    assert set(fetched.origins.values()) == {f"{good}{name}" for name in GZ}
    assert [r.split("/")[1] for r in mirror.requests] == ["bad", "good"] * 4
    for name, data in FILES.items():
        assert gzip.decompress((tmp_path / "raw" / f"{name}.gz").read_bytes()) == data


def test_connection_refused_falls_through(mirror, tmp_path):
    dead = Mirror()
    dead_url = dead.url + "/x/"
    dead.stop()  # nothing listens on that port any more
    good = mirror.serve("good", FILES)
    fetched = _fetch_mnist(tmp_path / "raw", [dead_url, good])
    assert len(fetched.origins) == 4


def test_no_good_mirror_is_one_line_naming_each_failure_and_leaves_nothing(mirror, tmp_path):
    corrupt = mirror.serve("corrupt", CORRUPT)
    cut = f"{mirror.url}/cut/"  # a whole response, but of a gzip file cut short
    mirror.routes["/cut/train-images-idx3-ubyte.gz"] = ("ok", mirror.routes["/corrupt/train-images-idx3-ubyte.gz"][1][:-30])
    short = mirror.serve("short", FILES, "short")
    slow = mirror.serve("slow", FILES, "slow")
    missing = f"{mirror.url}/missing/"
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as e:
        _fetch_mnist(tmp_path / "raw", [missing, corrupt, cut, short, slow], cache_dir=cache, timeout=0.3)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("train-images-idx3-ubyte.gz: no mirror served a good copy: ")
    assert f"{missing}train-images-idx3-ubyte.gz: HTTP 404 Not Found" in message
    assert f"{corrupt}train-images-idx3-ubyte.gz: content sha256 " in message
    assert f"is not the published {SHA['train-images-idx3-ubyte']}" in message
    assert f"{cut}train-images-idx3-ubyte.gz: the served file: truncated gzip stream " in message
    assert f"{short}train-images-idx3-ubyte.gz: truncated body: " in message
    assert f"{slow}train-images-idx3-ubyte.gz: timed out after 0.3 s" in message
    assert list((tmp_path / "raw").iterdir()) == []
    assert list((cache / "mnist").iterdir()) == []  # no partial download left either


def test_second_run_uses_the_cache_without_the_network(mirror, tmp_path):
    good = mirror.serve("good", FILES)
    cache = tmp_path / "cache"
    _fetch_mnist(tmp_path / "raw1", [good], cache_dir=cache)
    assert len(mirror.requests) == 4
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(GZ)
    mirror.stop()  # from here on any network use fails
    fetched = _fetch_mnist(tmp_path / "raw2", [good], cache_dir=cache)
    assert len(mirror.requests) == 4
    assert set(fetched.origins.values()) == {str(cache / "mnist" / n) for n in GZ}
    assert sorted(p.name for p in (tmp_path / "raw2").iterdir()) == sorted(GZ)


def test_a_previous_output_is_reused_without_the_network(mirror, tmp_path):
    good = mirror.serve("good", FILES)
    _fetch_mnist(tmp_path / "raw", [good])
    mirror.stop()
    fetched = _fetch_mnist(tmp_path / "new", [good], reuse_dir=tmp_path / "raw")
    assert set(fetched.origins.values()) == {str(tmp_path / "raw" / n) for n in GZ}


def test_a_damaged_cached_file_is_downloaded_again(mirror, tmp_path):
    good = mirror.serve("good", FILES)
    cache = tmp_path / "cache"
    write_set(cache / "mnist", FILES)
    damaged = cache / "mnist" / "train-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    fetched = _fetch_mnist(tmp_path / "raw", [good], cache_dir=cache)
    assert mirror.requests == ["/good/train-labels-idx1-ubyte.gz"]
    assert fetched.origins["train-labels-idx1-ubyte.gz"] == f"{good}train-labels-idx1-ubyte.gz"
    assert gzip.decompress(damaged.read_bytes()) == FILES["train-labels-idx1-ubyte"]  # the cache is repaired


def test_plain_files_in_data_dir_are_used_and_nothing_is_downloaded(mirror, tmp_path):
    data_dir = write_set(tmp_path / "mine", FILES, gz=False)
    fetched = _fetch_mnist(tmp_path / "raw", [mirror.url + "/"], data_dir=data_dir)
    assert mirror.requests == []
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(FILES)
    assert fetched.manifest["files"]["test-images"]["sha256"] == SHA["t10k-images-idx3-ubyte"]


def test_a_wrong_file_in_data_dir_is_refused_not_replaced(mirror, tmp_path):
    data_dir = write_set(tmp_path / "mine", {**FILES, "t10k-images-idx3-ubyte": idx_set(seed=1)["t10k-images-idx3-ubyte"]})
    good = mirror.serve("good", FILES)
    with pytest.raises(DataError, match=r"mine/t10k-images-idx3-ubyte.gz: content sha256 \w+ is not the published "
                                        r"\w+ of t10k-images-idx3-ubyte \(a different or damaged file\)$"):
        _fetch_mnist(tmp_path / "raw", [good], data_dir=data_dir)
    assert mirror.requests == []


def test_downloaded_files_read_back_as_the_served_arrays(mirror, tmp_path):
    _fetch_mnist(tmp_path / "raw", [mirror.serve("good", FILES)])
    images = read_idx(tmp_path / "raw" / "train-images-idx3-ubyte.gz")
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8


def test_download_refuses_an_oversized_body(mirror, tmp_path):
    url = mirror.serve("big", {"f": bytes(5000)})
    with pytest.raises(DataError, match=r"f.gz: no mirror served a good copy: .*announces \d+ bytes, more than the 10-byte limit"):
        download("f.gz", [url], tmp_path / "f.gz", lambda p: None, max_bytes=10)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_each_try_and_each_file(mirror, tmp_path):
    calls = []
    short, good = mirror.serve("short", FILES, "short"), mirror.serve("good", FILES)
    download("train-labels-idx1-ubyte.gz", [short, good], tmp_path / "x.gz", lambda p: None,
             progress=lambda *call: calls.append(call))
    size = len(mirror.routes["/good/train-labels-idx1-ubyte.gz"][1])
    starts = [i for i, (_, done, _) in enumerate(calls) if done == 0]
    assert len(starts) == 2  # each mirror's try starts at 0, the next bar's cue
    assert calls[-1] == ("train-labels-idx1-ubyte.gz", size, size)
    assert all(total == size for _, _, total in calls)


@pytest.mark.parametrize("terminal", [True, False])
def test_the_download_bars_through_a_real_fetch(mirror, tmp_path, monkeypatch, terminal):
    monkeypatch.setattr(zerodl.progress, "LINE_SECONDS", 3600)  # a log's lines: only the last of each file
    out = io.StringIO()
    with DownloadBars(file=out, terminal=terminal) as progress:
        _fetch_mnist(tmp_path / "raw", [mirror.serve("short", FILES, "short"), mirror.serve("good", FILES)],
                     progress=progress)
    text = out.getvalue()
    assert text.endswith("\n")
    if terminal:  # a bar per try: the cut one ended too, on a line of its own
        ended = [line.rsplit("\r", 1)[1] for line in text.split("\n")[:-1]]
        assert [line.split(":")[0] for line in ended] == [name for name in GZ for _ in range(2)]
        assert all(line.split(":")[1].startswith(" 100%|") for line in ended[1::2])
    else:  # a log: the last line of each file; none for the cut try, which never reached its end
        assert "\r" not in text and "\x1b" not in text
        lines = text.splitlines()
        assert [line.split(":")[0] for line in lines] == GZ
        assert all(" (100%) in " in line for line in lines)
