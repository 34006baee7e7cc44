"""One settings schema: typed parsing, errors naming the component and setting, checked before any work."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexes.base import index_class, parse_index_spec
from retriever.api import Engine
from retriever.core.errors import SettingError, SpecError
from retriever.core.settings import (OMIT, Schema, Setting, above, at_least, from_strings, one_of, option, schema_of,
                                     validate, within)
from retriever.fusion import Fusion
from retriever.rerank.base import load_reranker, reranker_settings

SCHEMA = Schema("demo", (
    Setting("k", int, 60, at_least(1)),
    Setting("w", float, 0.5, within(0, 1)),
    Setting("flag", bool, False),
    Setting("name", str, "x", one_of("x", "y")),
    Setting("path", str),
    Setting("limit", int, None, above(0), nullable=True),
    Setting("extra", int, OMIT),
), rules=(lambda s: ("k", "must be even when flag is set, got 3") if s["flag"] and s["k"] == 3 else None,))


def test_schema_converts_strings_and_fills_defaults():
    parsed = SCHEMA.parse({"k": "20", "w": "1e-1", "flag": "yes", "path": "p", "limit": "none"})
    assert parsed == {"k": 20, "w": 0.1, "flag": True, "name": "x", "path": "p", "limit": None}
    assert SCHEMA.parse(parsed) == parsed  # typed values (a manifest) parse to themselves
    assert SCHEMA.parse({"path": "p", "extra": "4"})["extra"] == 4
    assert SCHEMA.parse({"k": "5"}, fill=False) == {"k": 5}
    assert "k (int, default 60)" in SCHEMA.describe() and "path (str, required)" in SCHEMA.describe()


@pytest.mark.parametrize("given,message", [
    ({"k": "abc"}, "demo: setting 'k' must be an integer, got 'abc'"),
    ({"k": "1.5"}, "setting 'k' must be an integer"),
    ({"k": True}, "setting 'k' must be an integer"),
    ({"k": "0"}, "setting 'k' must be at least 1, got '0'"),
    ({"w": "nan"}, "setting 'w' must be a finite number, got 'nan'"),
    ({"w": float("inf")}, "setting 'w' must be a finite number"),
    ({"w": "-inf"}, "setting 'w' must be a finite number"),
    ({"w": "2"}, r"setting 'w' must be within \[0, 1\], got '2'"),
    ({"flag": "maybe"}, "setting 'flag' must be true or false"),
    ({"name": "z"}, "setting 'name' must be one of x, y, got 'z'"),
    ({"limit": "0"}, "setting 'limit' must be greater than 0"),
    ({"colour": "red", "size": "2"}, "demo: unknown settings 'colour', 'size'; known: k, w, flag, name, path"),
    ({"flag": "true", "k": "3"}, "setting 'k' must be even"),
])
def test_schema_errors_name_component_and_setting(given, message):
    with pytest.raises(SettingError, match=message) as error:
        SCHEMA.parse({"path": "p", **given})
    assert error.value.component == "demo"


def test_required_setting():
    with pytest.raises(SettingError, match="demo: setting 'path' is required"):
        SCHEMA.parse({})


@dataclass(frozen=True)
class Demo:
    steps: int = option(10, at_least(1), "steps")
    rate: float = option(0.1, above(0))
    limit: int | None = None


DEMO = schema_of(Demo, "train demo")


def test_dataclass_schema():
    assert DEMO["limit"].nullable and DEMO["steps"].help == "steps"
    assert from_strings(Demo, DEMO, {"steps": "3", "limit": "7"}) == Demo(3, 0.1, 7)
    with pytest.raises(SettingError, match="train demo: setting 'rate' must be greater than 0, got -1"):
        validate(Demo(rate=-1), DEMO)


@pytest.mark.parametrize("spec,setting", [
    ("bm25(k1=abc)", "k1"), ("bm25(b=2)", "b"), ("bm25(k2=1)", "k2"),
    ("dense(factory=Nope)", "factory"), ("dense(max_seq_length=0)", "max_seq_length"),
    ("sparse(top_k=-1)", "top_k"), ("sparse(backend=faiss)", "backend"), ("sparse(scale=nan)", "scale"),
    ("generative(heads=3)", "heads"), ("generative(dropout=1)", "dropout"),
    ("generative(queries=nfcorpus:test)", "queries"),
])
def test_bad_index_settings_fail_before_the_engine_is_written(tmp_path, spec, setting):
    with pytest.raises(SettingError, match=f"setting '{setting}'") as error:
        Engine.build(tmp_path / "engine", [{"_id": "d1", "text": "statins"}], indexes=["bm25", spec])
    assert error.value.setting == setting and error.value.component == spec.split("(")[0]
    assert not (tmp_path / "engine").exists()


def test_dense_factory_checked_without_encoding():
    with pytest.raises(SettingError, match=r"dense: setting 'factory' must be a FAISS index_factory string, "
                                           r"got 'Nope' \(FAISS: could not parse"):
        parse_index_spec("dense(factory=Nope)")
    for good in ("Flat", "HNSW32", "'IVF256,PQ16'", "'IVF8,PQ16'"):
        assert parse_index_spec(f"dense(factory={good})")[1] == "dense"


@pytest.fixture(scope="module")
def lex_engine(tmp_path_factory, nfcorpus):
    """A BM25 engine whose index is not named 'bm25'."""
    docs = [doc for _, (doc, _, _) in zip(range(200), nfcorpus.documents())]
    return Engine.build(tmp_path_factory.mktemp("settings") / "lex", docs, indexes=["lex=bm25(k1=1.2)"])


def snapshot(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in path.rglob("*")}


def test_settings_persist_in_their_old_form(lex_engine):
    assert lex_engine.specs == {"lex": "lex=bm25(k1=1.2)"}
    manifest = json.loads((lex_engine.indexes["lex"].directory / "manifest.json").read_text())
    assert manifest["settings"] == {"k1": 1.2, "b": 0.4}
    assert lex_engine.indexes["lex"].benchmark_extras(["statins"]) == {}  # the protocol's default hook


def test_bad_settings_leave_an_existing_engine_unchanged(lex_engine):
    before = snapshot(lex_engine.path)
    for spec in ("dense(factory=Nope)", "bm25(k1=abc)"):
        with pytest.raises(SettingError):
            lex_engine.build_indexes([spec])
    assert snapshot(lex_engine.path) == before


@pytest.mark.parametrize("using,setting", [
    ("rrf(lex,k=-1)", "k"), ("rrf(lex,k=abc)", "k"), ("rrf(lex,k=0)", "k"),
    ("norm(lex^nan)", "weight of lex"), ("norm(lex^inf)", "weight of lex"), ("norm(lex^x)", "weight of lex"),
    ("norm(lex,method=median)", "method"), ("rrf(lex,method=zscore)", "method"),
])
def test_bad_fusion_settings(lex_engine, using, setting):
    with pytest.raises(SettingError, match=f"setting '{setting}'|unknown setting '{setting}'"):
        lex_engine.search("statins", using=using)
    assert Fusion.parse("rrf(lex,k=1)").k == 1


@pytest.mark.parametrize("spec,message", [
    ("top(k=abc)", "top: setting 'k' must be an integer, got 'abc'"),
    ("top(k=0)", "top: setting 'k' must be at least 1"),
    ("top(n=3)", "top: unknown setting 'n'; known: k"),
    ("cross(k=3)", "cross: setting 'path' is required"),
    ("cross(path=nowhere,mix=2)", r"cross: setting 'mix' must be within \[0, 1\]"),
    ("cross(path=nowhere,batch_size=0)", "cross: setting 'batch_size' must be at least 1"),
    ("rl(path=nowhere,max_k=0)", "rl: setting 'max_k' must be at least 1"),
])
def test_bad_reranker_settings_fail_before_a_model_loads(lex_engine, spec, message):
    with pytest.raises(SettingError, match=message):
        reranker_settings(spec)  # the model path does not exist: the settings fail first
    with pytest.raises(SettingError, match=message):
        lex_engine.search("statins", using="lex", rerank=spec)


def test_reranker_settings_are_typed():
    assert load_reranker("top(k=3)").k == 3
    cls, settings = reranker_settings("cross(path=somewhere,mix=0.25)")
    assert cls.__name__ == "CrossReranker" and settings == {"path": "somewhere", "k": 5, "mix": 0.25,
                                                            "batch_size": 32, "cache": None}


def test_sparse_trainer_settings_fail_before_the_engine_is_built(tmp_path):
    from retriever.train.sparse.train import TrainSettings, run_training

    for options, setting in (({"steps": "0"}, "steps"), ({"lr": "nan"}, "lr"), ({"teachers": "colbert:1"}, "teachers"),
                             ({"teachers": "bm25:x"}, "teachers"), ({"eval_start": "maybe"}, "eval_start")):
        with pytest.raises(SettingError, match=f"train sparse: setting '{setting}'"):
            run_training(tmp_path / "engine", "nfcorpus", tmp_path / "out", options)
    assert not (tmp_path / "engine").exists() and not (tmp_path / "out").exists()
    with pytest.raises(SettingError, match="setting 'loss' must be one of kl, marginmse"):
        TrainSettings(loss="mse")
    assert TrainSettings(bm25_index="lex", teachers="bm25:2").teacher_indexes == {"bm25": "lex"}


def test_teachers_read_the_named_index(lex_engine):
    from retriever.train.sparse.teachers import TeacherEnsemble

    scores = TeacherEnsemble(lex_engine, {"bm25": 1.0}, depth=20, indexes={"bm25": "lex"}).prepare(["statins"])
    assert 0 < len(scores.pools[0]) <= 20 and math.isclose(float(scores.score(0, scores.pools[0][:1])[0]), 1.0)
    with pytest.raises(SpecError, match="needs the engine index"):
        TeacherEnsemble(lex_engine, {"bm25": 1.0})  # no index named 'bm25' and none named as a setting
    with pytest.raises(SpecError, match="the dense teacher reads a dense index; 'lex' .* is a bm25 index"):
        TeacherEnsemble(lex_engine, {"dense": 1.0}, indexes={"dense": "lex"})


@pytest.mark.parametrize("rl,options,message", [
    (False, {"lr": "nan"}, "train reranker: setting 'lr' must be a finite number"),
    (False, {"max_steps": "0"}, "train reranker: setting 'max_steps' must be at least 1"),
    (False, {"using": "rrf(bm25,dense,k=-1)"}, "train reranker: setting 'using' must be a valid fusion spec"),
    (False, {"learning_rate": "1"}, "train reranker: unknown setting 'learning_rate'"),
    (True, {"min_k": "6"}, r"train reranker --rl: setting 'min_k' must be at most max_k \(5\)"),
    (True, {"holdout": "1"}, r"train reranker --rl: setting 'holdout' must be within \[0, 1\)"),
    (True, {"limit": "abc"}, "train reranker --rl: setting 'limit' must be an integer"),
])
def test_reranker_trainer_settings_fail_before_training(tmp_path, rl, options, message):
    from retriever.train.rerank.training import train_reranker

    sources = [f"nfcorpus:train:{tmp_path / 'no-engine'}"]
    with pytest.raises(SettingError, match=message):
        train_reranker(tmp_path / "out", rl, sources, tmp_path / "cross" if rl else None, options)
    assert not (tmp_path / "out").exists()


def test_every_index_kind_declares_a_schema():
    from indexes.base import KINDS

    for kind in KINDS:
        schema = index_class(kind).schema
        assert schema.component == kind and schema.defaults()
