"""zerodl.params: params.yaml -> typed settings; one clear ParamsError per bad key."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from zerodl.errors import ParamsError
from zerodl.params import Params, as_dict, check_batch_size, load_params, parse_params

REPO_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"

# The defaults as the repository's params.yaml states them, written out by hand.
DEFAULTS = {
    "seed": 0,
    "data": {"source": "mnist-5k", "dir": None, "test_fraction": 0.2},
    "model": {"hidden_size": 50, "weight_init_std": 0.01, "activation": "relu", "dropout": 0.0},
    "train": {"iters": 10000, "epochs": None, "batch_size": 100, "learning_rate": 0.1, "optimizer": "sgd",
              "gradient": "backprop", "momentum": 0.9, "weight_decay": 0.0, "dtype": "float32", "threads": 1},
    "report": {"misclassified": 25},
}


def _load(tmp_path, text, name="params.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_params(path)


def _error(tmp_path, text):
    with pytest.raises(ParamsError) as e:
        _load(tmp_path, text)
    assert e.value.exit_code == 2
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --- the repository's params.yaml ------------------------------------------------------------

def test_repo_params_yaml_gives_the_defaults():
    p = load_params(REPO_PARAMS)
    assert as_dict(p) == DEFAULTS
    assert isinstance(p.train.learning_rate, float) and isinstance(p.train.iters, int)
    assert p.data.dir is None


def test_dataclass_defaults_mirror_params_yaml():
    assert as_dict(Params()) == DEFAULTS


def test_empty_file_gives_defaults(tmp_path):
    assert as_dict(_load(tmp_path, "")) == DEFAULTS
    assert as_dict(_load(tmp_path, "train:\n")) == DEFAULTS


def test_values_are_read(tmp_path):
    p = _load(tmp_path, """
seed: 7
data: {source: idx, dir: /data/mnist, test_fraction: 0.5}
model: {hidden_size: 100, weight_init_std: he}
train:
  iters: 5
  batch_size: 32
  learning_rate: 0.001
  optimizer: adam
  gradient: numerical
  momentum: 0.5
  dtype: float64
  threads: 2
report: {misclassified: 0}
""")
    assert p.seed == 7
    assert (p.data.source, p.data.dir, p.data.test_fraction) == ("idx", "/data/mnist", 0.5)
    assert (p.model.hidden_size, p.model.weight_init_std) == (100, "he")
    t = p.train
    assert (t.iters, t.batch_size, t.learning_rate, t.optimizer, t.gradient, t.momentum, t.dtype, t.threads) == \
        (5, 32, 0.001, "adam", "numerical", 0.5, "float64", 2)
    assert p.report.misclassified == 0
    assert dataclasses.is_dataclass(p) and p.train.batch_size == 32


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("1.0e-3", 0.001), ("5E-2", 0.05), ("1e+0", 1.0), (".5", 0.5), ("2", 2),
])
def test_learning_rate_in_exponent_notation_is_a_number(tmp_path, text, value):
    # YAML 1.2 (what DVC reads) says 1e-3 is a float; PyYAML's YAML 1.1 says string
    p = _load(tmp_path, f"train:\n  learning_rate: {text}\n")
    assert p.train.learning_rate == value
    assert not isinstance(p.train.learning_rate, str)


def test_quoted_number_stays_a_string(tmp_path):
    msg = _error(tmp_path, "train:\n  learning_rate: '1e-3'\n")
    assert "train.learning_rate" in msg and "'1e-3'" in msg


# --- bad values: each names the key, the value and what is allowed ------------------------------

@pytest.mark.parametrize("text, key, value, allowed", [
    ("train:\n  batch_size: '100'\n", "train.batch_size", "'100'", "integer"),
    ("train:\n  batch_size: 0\n", "train.batch_size", "0", "integer >= 1"),
    ("train:\n  batch_size: -1\n", "train.batch_size", "-1", "integer >= 1"),
    ("train:\n  batch_size: 12.5\n", "train.batch_size", "12.5", "integer"),
    ("train:\n  iters: true\n", "train.iters", "true", "integer"),
    ("train:\n  iters: 0\n", "train.iters", "0", "integer from 1 to 10000000"),
    ("train:\n  iters: 100000000000\n", "train.iters", "100000000000", "integer from 1 to 10000000"),
    ("train:\n  learning_rate: 0\n", "train.learning_rate", "0", "> 0"),
    ("train:\n  learning_rate: -0.1\n", "train.learning_rate", "-0.1", "> 0"),
    ("train:\n  learning_rate: .nan\n", "train.learning_rate", "nan", "finite number > 0"),
    ("train:\n  learning_rate: .inf\n", "train.learning_rate", "inf", "finite number > 0"),
    ("train:\n  learning_rate: fast\n", "train.learning_rate", "'fast'", "number > 0"),
    ("train:\n  optimizer: adamw\n", "train.optimizer", "'adamw'", "sgd | momentum | adagrad | rmsprop | adam"),
    ("train:\n  optimizer: SGD\n", "train.optimizer", "'SGD'", "sgd | momentum"),
    ("train:\n  gradient: autograd\n", "train.gradient", "'autograd'", "backprop | numerical"),
    ("train:\n  momentum: 1.0\n", "train.momentum", "1.0", "[0, 1)"),
    ("train:\n  dtype: float16\n", "train.dtype", "'float16'", "float32 | float64"),
    ("train:\n  threads: 0\n", "train.threads", "0", "from 1 to 256"),
    ("model:\n  hidden_size: 0\n", "model.hidden_size", "0", "integer from 1"),
    ("model:\n  hidden_size: '50'\n", "model.hidden_size", "'50'", "integer"),
    ("model:\n  weight_init_std: kaiming\n", "model.weight_init_std", "'kaiming'", "he | xavier"),
    ("model:\n  weight_init_std: -0.01\n", "model.weight_init_std", "-0.01", "number > 0"),
    ("data:\n  source: cifar10\n", "data.source", "'cifar10'", "mnist-5k | mnist | fashion-mnist | idx"),
    ("data:\n  test_fraction: 1.5\n", "data.test_fraction", "1.5", "between 0 and 1"),
    ("data:\n  test_fraction: 0\n", "data.test_fraction", "0", "between 0 and 1"),
    ("data:\n  dir: ''\n", "data.dir", "''", "folder path or null"),
    ("data:\n  source: idx\n", "data.dir", "null", "folder path when data.source is idx"),
    ("report:\n  misclassified: -1\n", "report.misclassified", "-1", "integer from 0 to 400"),
    ("seed: -3\n", "seed", "-3", "integer from 0"),
    ("seed: 0.5\n", "seed", "0.5", "integer"),
])
def test_bad_value(tmp_path, text, key, value, allowed):
    msg = _error(tmp_path, text)
    assert f"{key} = {value}" in msg, msg
    assert allowed in msg, msg
    assert str(tmp_path / "params.yaml") in msg


def _keys(cls=Params, prefix=""):
    """Every key of params.yaml, dotted, read off the dataclasses (a key added later is covered too)."""
    for f in dataclasses.fields(cls):
        default = getattr(cls(), f.name)
        if dataclasses.is_dataclass(default):
            yield from _keys(type(default), f"{prefix}{f.name}.")
        else:
            yield prefix + f.name


@pytest.mark.parametrize("key", list(_keys()))
def test_every_key_says_what_it_allows(key):
    section, _, name = key.rpartition(".")
    raw = {section: {name: [1, 2]}} if section else {name: [1, 2]}
    with pytest.raises(ParamsError) as e:
        parse_params(raw, "cfg")
    msg = str(e.value)
    assert msg.startswith(f"cfg: {key} = [1, 2]: expected "), msg
    # words of our own, not pydantic's ("Input should be ...") nor a bare class name ("a str")
    assert "\n" not in msg and "Input should" not in msg and "pydantic" not in msg
    assert not any(f" a {t}" in msg for t in ("str", "float", "NoneType", "list", "dict")), msg


def test_numbers_keep_the_type_they_are_written_in(tmp_path):
    # as_dict goes into the model file and the report: 1 stays 1, not 1.0
    p = _load(tmp_path, "train:\n  learning_rate: 1\n  momentum: 0\nmodel:\n  weight_init_std: 2\n")
    d = as_dict(p)
    assert [type(v) for v in (d["train"]["learning_rate"], d["train"]["momentum"], d["model"]["weight_init_std"])] \
        == [int, int, int]
    assert type(as_dict(_load(tmp_path, "train:\n  learning_rate: 1.0\n"))["train"]["learning_rate"]) is float


@pytest.mark.parametrize("text, words", [
    ("model:\n  weight_init_std: .inf\n", "model.weight_init_std = inf: expected a finite number > 0, or he | xavier"),
    ("data:\n  dir: '   '\n", "data.dir = '   ': expected a folder path or null"),
    ("data:\n  dir: 5\n", "data.dir = 5: expected a folder path or null"),
    ("train:\n  momentum: -0.1\n", "train.momentum = -0.1: expected a number in [0, 1)"),
    ("train:\n  optimizer: !!binary c2dk\n", "train.optimizer = b'sgd': expected one of sgd | momentum"),
])
def test_more_bad_values(tmp_path, text, words):
    assert words in _error(tmp_path, text)


def test_the_first_problem_in_the_file_is_the_one_shown(tmp_path):
    assert "seed = -1" in _error(tmp_path, "seed: -1\ntrian: {}\n")
    assert "unknown key 'trian'" in _error(tmp_path, "trian: {}\nseed: -1\n")
    assert "report.misclassified = -1" in _error(tmp_path, "report: {misclassified: -1}\ndata: {source: x}\n")
    assert "unknown key 'train.zzz'" in _error(tmp_path, "train: {zzz: 1, iters: 0}\n")
    assert "train.iters = 0" in _error(tmp_path, "train: {iters: 0, zzz: 1}\n")


@pytest.mark.parametrize("text, key", [("1: 2\n", "'1'"), ("true: 2\n", "'True'"), ("null: 2\n", "'None'"),
                                       ("train: {3: 4}\n", "'train.3'")])
def test_a_key_that_is_not_text(tmp_path, text, key):
    assert f"unknown key {key}" in _error(tmp_path, text)


def test_unknown_key_with_did_you_mean(tmp_path):
    msg = _error(tmp_path, "train:\n  learnig_rate: 0.1\n")
    assert "train.learnig_rate" in msg
    assert "did you mean 'learning_rate'" in msg
    assert "learning_rate" in msg.split("allowed:")[1]


def test_unknown_top_level_key(tmp_path):
    msg = _error(tmp_path, "sed: 0\n")
    assert "'sed'" in msg and "did you mean 'seed'" in msg
    msg = _error(tmp_path, "optimizer: adam\n")  # a train key at the top level
    assert "'optimizer'" in msg and "train" in msg


def test_unknown_key_without_close_match(tmp_path):
    msg = _error(tmp_path, "train:\n  zzz: 1\n")
    assert "train.zzz" in msg and "did you mean" not in msg


def test_section_must_be_a_mapping(tmp_path):
    msg = _error(tmp_path, "train: 5\n")
    assert "train = 5" in msg and "mapping" in msg
    msg = _error(tmp_path, "- 1\n- 2\n")
    assert "mapping" in msg and "list" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError) as e:
        load_params(tmp_path / "nope.yaml")
    assert e.value.exit_code == 2
    assert "nope.yaml" in str(e.value) and "not found" in str(e.value)


def test_yaml_that_does_not_parse(tmp_path):
    msg = _error(tmp_path, "train:\n  iters: [1, 2\n  batch_size: 3\n")
    assert "not valid YAML" in msg and "line" in msg
    msg = _error(tmp_path, "train:\n\tbatch_size: 3\n")  # a tab
    assert "not valid YAML" in msg


def test_parse_params_directly():
    p = parse_params({"train": {"batch_size": 10}})
    assert p.train.batch_size == 10 and p.train.iters == 10000
    with pytest.raises(ParamsError, match=r"train.batch_size = 0"):
        parse_params({"train": {"batch_size": 0}}, "cfg")


def test_params_are_frozen():
    p = Params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.iters = 5  # type: ignore[misc]


# --- batch size against the data ------------------------------------------------------------------

def test_check_batch_size(tmp_path):
    p = _load(tmp_path, "train:\n  batch_size: 100\n")
    check_batch_size(p, 4000)
    check_batch_size(p, 100)  # equal is fine
    with pytest.raises(ParamsError) as e:
        check_batch_size(p, 99)
    assert e.value.exit_code == 2
    msg = str(e.value)
    assert "train.batch_size = 100" in msg and "99" in msg


# --- iterations or epochs (issue 14) ---------------------------------------------------------------

def test_epochs_instead_of_iters(tmp_path):
    from zerodl.params import iterations

    p = _load(tmp_path, "train:\n  iters: null\n  epochs: 10\n  batch_size: 100\n")
    assert (p.train.iters, p.train.epochs) == (None, 10)
    assert iterations(p, 60_000) == 6_000  # the study group's run: 10 epochs of 600
    assert iterations(p, 4_050) == 400     # an epoch is train size // batch_size
    assert iterations(_load(tmp_path, "train:\n  iters: 123\n"), 60_000) == 123


@pytest.mark.parametrize("text, words", [
    ("train:\n  epochs: 10\n", "train.iters = 10000, train.epochs = 10: expected exactly one of them, the other "
                                 "null (both are set; to count in epochs, set train.iters: null)"),
    ("train:\n  iters: null\n", "train.iters = null, train.epochs = null: expected exactly one of them, the "
                                  "other null (both are null)"),
    ("train:\n  iters: null\n  epochs: 0\n", "train.epochs = 0: expected an integer from 1 to 100000 or null"),
    ("model:\n  activation: tanh\n", "model.activation = 'tanh': expected one of relu | sigmoid"),
    ("model:\n  dropout: 1\n", "model.dropout = 1: expected a number in [0, 1)"),
    ("train:\n  weight_decay: -0.1\n", "train.weight_decay = -0.1: expected a finite number >= 0"),
    ("model:\n  dropuot: 0.5\n", "unknown key 'model.dropuot' (did you mean 'dropout'?)"),
])
def test_the_new_keys_get_one_clear_line(tmp_path, text, words):
    assert words in _error(tmp_path, text)

