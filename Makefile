# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= work/nfcorpus

.PHONY: install llm demo test check bench clean

install: $(VENV)/.installed

# torch is pinned and installed first: an unpinned torch pulled in by
# sentence-transformers would resolve to a multi-GB CUDA build. The Lucene helpers
# (indexes/java) are compiled where a JDK's javac is on the PATH; they are optional.
$(VENV)/.installed: setup.cfg pyproject.toml $(wildcard indexes/java/*.java)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m indexes.jvm
	touch $@

# The optional language-model extra for `retriever ask` / `eval multihop`: llama.cpp built
# without its AMX kernels (they crash inside some VMs that report AMX), with AVX-512 only where
# this CPU has it (a build with it dies with "Illegal instruction" on CPUs without), and a small
# GGUF model. The wheel is built here, never taken from pip's cache: it depends on CMAKE_ARGS.
LLM ?= qwen2.5-coder-1.5b-instruct
AVX512 = $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo ON || echo OFF)
llm: install
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=$(AVX512)" \
		$(BIN)/pip install --quiet --no-cache-dir -e '.[llm]'
	../shared/bin/fetch-llm $(LLM)

demo: install
	$(BIN)/retriever index build $(DEMO) --dataset nfcorpus --kinds bm25,dense
	$(BIN)/retriever eval beir $(DEMO) --dataset nfcorpus --split test \
		--using bm25 --using dense --using 'rrf(bm25,dense)' --using 'norm(bm25,dense)' \
		--out results/demo
	$(BIN)/retriever search $(DEMO) "Do statins reduce the risk of breast cancer?" --using 'norm(bm25,dense)' -k 5

test: install
	$(BIN)/python -m pytest -q

check: install
	$(BIN)/retriever eval check

bench: install
	$(BIN)/retriever bench --dataset nfcorpus --out results/bench

clean:
	rm -rf $(VENV) work results .pytest_cache
