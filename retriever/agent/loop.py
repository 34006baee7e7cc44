"""The agentic multi-hop loop: retrieve, select, refine, decide; stop when the evidence suffices.

Each hop runs the same stages:

Before the first hop the question is read (:func:`~retriever.agent.plan.plan`):
the entities a comparison compares, and how many hops its chain of relations needs.
Each hop then runs the same stages:

1. **retrieve** the hop's query over the engine's indexes (``using``, default
   ``hybrid``: RRF over every index) — on the first hop also each compared entity's
   name — and add the documents the question (first hop) and the best new hits
   *mention by title* (bridge entities, no model);
2. **select**: find the evidence chains in the pool (one per compared entity, or one
   for the question, of any length: :meth:`Pool.chains`), order the pool so the chains
   come first (:meth:`Pool.ordered`), then let the reranker (``top(k=5)`` by default;
   any :class:`~retriever.rerank.base.Reranker`) choose the evidence, knowing the
   question, the hop and the evidence kept so far;
3. **refine**: keep the useful sentences of each passage;
4. **decide**: with a language model, answer or write the next sub-question; without
   one, stop when every part of the question is covered by a linked chain
   (:meth:`Pool.covered`), else search for what is missing: the uncovered compared
   entity, or the question expanded with the evidence's bridge titles and salient terms.

The loop, never the model, owns the budgets: at most ``min(max_hops, expected
hops)`` retrievals (one more with a model, which may need to rephrase), one LM call
per hop plus one final answer, ``max_tokens`` LM tokens and ``max_seconds``
(retrieval time plus the LM time each call took when it ran) per question. The
citations are the chains' documents among the passages passed, and any passage
that contains the answer.

Example:
    >>> agent = Agent(Engine.open("work/hotpotqa"), load_generator("qwen2.5-coder-1.5b-instruct.gguf"))
    >>> answer = agent.ask("Which country is the director of Kiss and Tell from?")
    >>> answer.text, answer.citations, answer.trace.stop_reason
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from retriever.agent.choice import choose
from retriever.agent.evidence import Lexicon, Pool, refine
from retriever.agent.plan import Plan, plan
from retriever.agent.prompts import STOP, decide_messages, parse_decision
from retriever.agent.reading import ANSWER_TOKENS, check_reader, generator_call, read_answer
from retriever.agent.trace import Evidence, Hop, Trace
from retriever.core.errors import InputError, SpecError
from retriever.generate.base import Generation, Generator, Message
from retriever.core.text import words
from retriever.core.types import Hit
from retriever.rerank.base import RerankContext, Reranker, load_reranker, wants_signals

if TYPE_CHECKING:
    from retriever.engine.reader import Reader

SUFFICIENT_COVERAGE = 0.6
LINK_FROM = 3
CHARS_PER_TOKEN = 3.0


@dataclass(frozen=True)
class Budget:
    """Per-question limits the loop enforces whatever the model or the documents say.

    Attributes:
        max_hops: the most retrieval rounds (a question gets fewer when it expects fewer hops).
        max_tokens: LM tokens, prompt and completion together.
        max_seconds: retrieval time plus LM time.
    """

    max_hops: int = 4
    max_tokens: int = 8192
    max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.max_hops < 1 or self.max_tokens < 0 or self.max_seconds <= 0:
            raise SpecError(f"budget {self}: max_hops must be >= 1, max_tokens >= 0, max_seconds > 0")


@dataclass(frozen=True)
class Answer:
    """A short answer, the ids of the documents it rests on, the full trace, and the hits passed to the
    reader (the evidence, in order: what another reader would read from)."""

    text: str
    citations: list[str]
    trace: Trace
    passed: tuple[Hit, ...] = ()


class Agent:
    """The multi-hop loop over one engine.

    Args:
        engine: what to search: a :class:`~retriever.engine.reader.Reader` or an open
            :class:`~retriever.Engine` (anything with ``retrieve``, ``hits``, ``resolve`` and ``corpus``).
        generator: a language model (see :func:`retriever.generate.load_generator`);
            ``None`` runs the no-LLM mode.
        using: which indexes to search (index name, ``hybrid`` or a fusion spec).
        rerank: the evidence selector: a reranker or its spec.
        rescore: a reranker (or its spec) that re-orders each hop's retrieved hits, judged against the
            question, before the evidence chains are built, e.g. ``cross(path=DIR,k=30,mix=0.5)``;
            hits it does not pass on keep their retrieval order after those it does. ``None``: retrieval order.
        candidates: hits retrieved per hop, and candidates the reranker sees.
        passages: most passages passed to the reader.
        budget: the per-question :class:`Budget`.
        refine_sentences: pass only the useful sentences of each passage to the model.
        reader: how the final answer is read (:data:`~retriever.agent.reading.READERS`): ``direct`` (one
            short-answer call) or ``reason`` (a few sentences of reasoning, then the answer).
        choices: settle a which-of question ("..., A or B?") by the passed documents' dates, else map an
            answer that names neither A nor B to the one whose page mentions it
            (:func:`~retriever.agent.choice.choose`).
        lexicon: the corpus's title and term tables, when already built (e.g. shared by a service's
            agents); by default built on first use.
    """

    def __init__(self, engine: "Reader", generator: Generator | None = None, using: str = "hybrid",
                 rerank: str | Reranker = "top(k=5)", candidates: int = 30, passages: int = 5,
                 budget: Budget = Budget(), refine_sentences: bool = True, lexicon: Lexicon | None = None,
                 rescore: str | Reranker | None = None, reader: str = "direct",
                 choices: bool = False):
        if candidates < 1 or passages < 1:
            raise SpecError(f"candidates ({candidates}) and passages ({passages}) must be at least 1")
        engine.resolve(using)
        self.engine, self.generator, self.using = engine, generator, using
        self.reranker = load_reranker(rerank)
        self.rescorer = load_reranker(rescore) if rescore is not None else None
        self.candidates, self.passages, self.budget = candidates, passages, budget
        self.refine_sentences = refine_sentences
        self.reader, self.choices = check_reader(reader), choices
        self._lexicon = lexicon

    @property
    def lexicon(self) -> Lexicon:
        """Title and term tables of the engine's corpus (built on first use)."""
        if self._lexicon is None:
            self._lexicon = Lexicon(self.engine.corpus)
        return self._lexicon

    def with_reranker(self, rerank: str | Reranker) -> "Agent":
        """The same agent (sharing its lexicon) selecting evidence with another reranker."""
        return self._sharing(reranker=load_reranker(rerank))

    def with_generator(self, generator: Generator | None) -> "Agent":
        """The same agent (sharing its lexicon) with another language model (``None``: the no-LLM loop)."""
        return self._sharing(generator=generator)

    def _sharing(self, **changes) -> "Agent":
        """A copy with ``changes`` applied that shares this agent's lexicon (built now if not yet)."""
        other = copy.copy(self)
        vars(other).update(changes)
        self._lexicon = other._lexicon = self.lexicon
        return other

    def read(self, question: str, passed: Sequence[Hit]) -> tuple[str, list[Generation]]:
        """The loop's final read of ``passed``, outside a run: the same passages (refined to their useful
        sentences when ``refine_sentences``), reader, prompts, token limits and answer cleaning, no budgets.

        Returns:
            The answer and the generations it came from.

        Raises:
            InputError: the agent has no language model.
        """
        if self.generator is None:
            raise InputError("Agent.read needs a language model (generator=...)")
        passages = _reader_passages(Pool(question, self.lexicon), passed, self.refine_sentences)
        answer, generations = read_answer(generator_call(self.generator), question, passages, self.reader,
                                          self.choices, [(hit.title, hit.text) for hit in passed])
        return answer or "", generations

    def config(self) -> dict:
        """The settings that define a run (stored in every trace)."""
        return {"using": str(self.using), "rerank": str(self.reranker),
                "rescore": str(self.rescorer) if self.rescorer is not None else None, "candidates": self.candidates,
                "passages": self.passages, "max_hops": self.budget.max_hops, "max_tokens": self.budget.max_tokens,
                "max_seconds": self.budget.max_seconds, "refine": self.refine_sentences, "reader": self.reader,
                "choices": self.choices}

    def ask(self, question: str, on_hop: Callable[[Hop], None] | None = None) -> Answer:
        """Run the loop for ``question``; returns the answer, its citations and the trace.

        Args:
            question: the question.
            on_hop: called with each :class:`Hop` as soon as its decision is made (before the
                next hop runs), e.g. to stream the trace; it must not change the hop.
        """
        run = _Run(self, question, on_hop)
        return run.result()


class _Run:
    """One question's state while the loop runs."""

    def __init__(self, agent: Agent, question: str, on_hop: Callable[[Hop], None] | None = None):
        self.agent, self.question, self.on_hop = agent, question, on_hop
        self.pool = Pool(question, agent.lexicon)
        self.plan: Plan = plan(question, agent.lexicon.mention_keys(question))
        self.hops = min(agent.budget.max_hops, self.plan.hops + (agent.generator is not None))
        self.trace = Trace(question, agent.config(), agent.generator.name if agent.generator else None)
        self.trace.plan = {"parts": list(self.plan.parts), "hops": self.hops}
        self.kept: list[Hit] = []
        self.chains: list[tuple[str, ...]] = []
        self.answer: str | None = None

    def result(self) -> Answer:
        query, source = self.question, "question"
        for hop in range(self.hops):
            record = self.retrieve(hop, query, source)
            next_query = self.next_query(hop, record)
            if self.on_hop is not None:
                self.on_hop(record.hop_record)
            if next_query is None:
                break
            query, source = next_query
        self.finish()
        return Answer(self.trace.answer, self.trace.citations, self.trace, tuple(self.kept))

    def retrieve(self, hop: int, query: str, source: str) -> "_Retrieved":
        agent, started = self.agent, time.perf_counter()
        parts = list(self.plan.parts) if hop == 0 else []
        results = agent.engine.retrieve([query, *parts], k=agent.candidates, using=agent.using)
        retrieved, mentioned, new, searched = results[0], set(), [], []
        for index, result in enumerate(results):
            hits = self.rescored(hop, agent.engine.hits(result.ranking))
            new += self.pool.add(hits, f"hop{hop}" if index == 0 else f"part{index - 1}")
            mentioned |= set().union(*(self.pool.candidates[h.doc_id].mentions for h in hits[:LINK_FROM]))
            searched += [h.doc_id for h in hits]
        if hop == 0:
            mentioned |= self.pool.question_mentions
        linked = self.pool.add(self._documents(sorted(mentioned - self.pool.candidates.keys())), "link", ranked=False)
        self.chains = self.pool.chains(self.plan)
        ordered = self.pool.ordered(self.chains)[:agent.candidates]
        signals = retrieved.signals(agent.candidates) if wants_signals(agent.reranker) else {}
        context = RerankContext(question=self.question, hop=hop, kept=tuple(self.kept), signals=signals)
        self.kept = list(agent.reranker.rerank(query, ordered, context))[:agent.passages]
        record = Hop(hop, query, source, retrieved=list(dict.fromkeys(searched)), linked=linked,
                     kept=[h.doc_id for h in self.kept], seconds=round(time.perf_counter() - started, 4))
        self.trace.hops.append(record)
        self.trace.seconds += record.seconds
        return _Retrieved(record, bool(new or linked))

    def rescored(self, hop: int, hits: list[Hit]) -> list[Hit]:
        """``hits`` in the agent's ``rescore`` order (judged against the question), the rest after them."""
        if self.agent.rescorer is None or not hits:
            return hits
        first = self.agent.rescorer.rerank(self.question, hits, RerankContext(question=self.question, hop=hop))
        ids = {hit.doc_id for hit in first}
        return [*first, *(hit for hit in hits if hit.doc_id not in ids)]

    def next_query(self, hop: int, record: "_Retrieved") -> tuple[str, str] | None:
        """Stop on a budget or on no new evidence, else decide; the next (query, source) or None."""
        if hop and not record.retrieved_new:
            self.stop(record.hop_record, "no_new_evidence")
            return None
        if hop + 1 == self.hops:
            self.stop(record.hop_record, "max_hops")
            return None
        if self.over_time():
            self.stop(record.hop_record, "time_budget")
            return None
        return self.decide(record.hop_record)

    def decide(self, record: Hop) -> tuple[str, str] | None:
        """The next (query, source), or None when the loop stops here."""
        if self.agent.generator is None:
            if self.pool.covered(self.chains, self.plan, SUFFICIENT_COVERAGE):
                self.stop(record, "sufficient")
                return None
            record.decision = "search"
            return self.expansion(), "expansion"
        queries = [hop.query for hop in self.trace.hops]
        generation = self.call(record, decide_messages(self.question, self.passages(), queries[1:]))
        if generation is None:
            return None
        decision = parse_decision(generation.text)
        if decision.action == "answer":
            self.answer = self.chosen(decision.text)
            self.stop(record, "answered", "answer")
            return None
        record.decision = "search"
        if decision.text.strip().lower() not in {q.strip().lower() for q in queries}:
            return decision.text, "llm"
        # a model that repeats itself (small readers do) hands the hop to the no-LLM rule
        if self.pool.covered(self.chains, self.plan, SUFFICIENT_COVERAGE):
            self.stop(record, "repeated_query")
            return None
        return self.expansion(), "expansion"

    def expansion(self) -> str:
        """The no-LLM next query: the first uncovered compared entity with the predicate words its chain
        lacks and its bridge titles; else the question with the evidence's bridge titles and salient terms."""
        pool, plan = self.pool, self.plan
        if plan.comparison:
            per_part = self.chains if len(self.chains) == len(plan.parts) else [()] * len(plan.parts)
            for part, chain in zip(plan.parts, per_part):
                if not pool.covers(chain, plan, SUFFICIENT_COVERAGE):
                    hits = [pool.candidates[d].hit for d in chain]
                    return " ".join([part, *pool.uncovered([chain], plan), *pool.bridge_titles(hits)])
        terms = [*pool.bridge_titles(self.kept), *pool.salient_terms(self.kept, 3)]
        return " ".join([self.question, *terms])

    def call(self, record: Hop, messages: list[Message], max_tokens: int = ANSWER_TOKENS,
             stop: Sequence[str] = STOP) -> Generation | None:
        """One LM call charged to ``record``; None (and the loop stops) when a budget forbids it."""
        budget, trace = self.agent.budget, self.trace
        estimate = sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN + max_tokens
        if trace.tokens + estimate > budget.max_tokens:
            self.stop(record, "token_budget")
            return None
        if self.over_time():
            self.stop(record, "time_budget")
            return None
        generation = self.agent.generator.generate(messages, max_tokens=max_tokens, stop=stop)
        record.replies.append(generation.text)
        record.prompt_tokens += generation.prompt_tokens
        record.completion_tokens += generation.completion_tokens
        record.seconds = round(record.seconds + generation.seconds, 4)
        trace.lm_calls += 1
        trace.prompt_tokens += generation.prompt_tokens
        trace.completion_tokens += generation.completion_tokens
        trace.seconds += generation.seconds
        return generation

    def finish(self) -> None:
        """Write the evidence, the answer (a final reader call if none yet) and the citations."""
        passages = self.passages()
        self.trace.evidence = [Evidence(hit.doc_id, hit.title, self._hop_of(hit.doc_id), sentences)
                               for hit, sentences in zip(self.kept, self._sentences())]
        self.trace.chains = [list(chain) for chain in self.chains]
        last = self.trace.hops[-1]
        if self.answer is None and self.agent.generator is not None and self.trace.stop_reason not in (
                "token_budget", "time_budget"):
            answer, _ = read_answer(lambda m, t, s: self.call(last, m, t, s), self.question, passages,
                                    self.agent.reader)
            if answer is not None:
                self.answer = self.chosen(answer)
                last.decision = "answer"
        if self.answer is None:
            self.answer = self._extractive_answer()
        self.trace.answer = self.answer
        self.trace.citations = self._citations()
        self.trace.seconds = round(self.trace.seconds, 4)

    def chosen(self, answer: str) -> str:
        """``answer`` as the agent's ``choices`` setting reads it against the passed documents."""
        if not self.agent.choices:
            return answer
        return choose(self.question, [(hit.title, hit.text) for hit in self.kept], answer)

    def stop(self, record: Hop, reason: str, decision: str = "stop") -> None:
        record.decision = decision
        self.trace.stop_reason = reason

    def over_time(self) -> bool:
        return self.trace.seconds >= self.agent.budget.max_seconds

    def passages(self) -> list[tuple[str, str]]:
        return _reader_passages(self.pool, self.kept, self.agent.refine_sentences)

    def _sentences(self) -> list[list[str]]:
        return _sentences(self.pool, self.kept, self.agent.refine_sentences)

    def _documents(self, doc_ids: Sequence[str]) -> list[Hit]:
        return [Hit(doc.doc_id, 0.0, doc.title, doc.text) for doc in self.agent.engine.corpus.get_many(doc_ids)]

    def _hop_of(self, doc_id: str) -> int:
        return next((hop.hop for hop in self.trace.hops if doc_id in hop.retrieved or doc_id in hop.linked), 0)

    def _extractive_answer(self) -> str:
        """No model: the evidence sentence that covers the question best."""
        scored = [(self._sentence_coverage(s), s) for sentences in self._sentences() for s in sentences]
        return max(scored, key=lambda pair: pair[0])[1] if scored else ""

    def _sentence_coverage(self, sentence: str) -> float:
        found = set(words(sentence))
        lexicon = self.pool.lexicon
        return sum(lexicon.idf(w) for w in self.pool.question_words if w in found)

    def _citations(self) -> list[str]:
        """The evidence chains' documents among the passages passed, and any passage that contains the answer."""
        answer = (self.answer or "").lower()
        passed = {hit.doc_id for hit in self.kept}
        cited = [doc_id for chain in self.chains for doc_id in chain if doc_id in passed] or \
            [hit.doc_id for hit in self.kept[:1]]
        if answer and answer not in ("yes", "no"):
            cited += [hit.doc_id for hit in self.kept if answer in (hit.title + " " + hit.text).lower()]
        return list(dict.fromkeys(cited))


def _sentences(pool: Pool, kept: Sequence[Hit], refine_sentences: bool) -> list[list[str]]:
    """Each kept passage's sentences the reader sees: the useful ones, or the whole text."""
    return refine(pool, kept) if refine_sentences else [[hit.text] for hit in kept]


def _reader_passages(pool: Pool, kept: Sequence[Hit], refine_sentences: bool) -> list[tuple[str, str]]:
    """``(title, text)`` of each kept passage as the reader reads it."""
    return [(hit.title, " ".join(sentences)) for hit, sentences in zip(kept, _sentences(pool, kept, refine_sentences))]


@dataclass
class _Retrieved:
    hop_record: Hop
    retrieved_new: bool
