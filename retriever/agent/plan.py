"""What a question asks for, read from its words alone: compared entities and the expected chain length.

No model and no gold decomposition: :func:`plan` reads the surface of the question.

* **Comparison** questions name two (or more) entities to compare: ``"Which film came
  out first, Blind Shaft or The Mask Of Fu Manchu?"``, ``"Are X and Y both located in
  the same country?"``. Their *parts* are the entity names; the loop retrieves each
  one, and each part needs its own evidence chain (a chain of two when the compared
  attribute belongs to a related entity: "the film whose *director* was born first").
* Every question gets an **expected hop count**: one hop per relation it chains.
  Relations are counted from relative clauses (``that``, ``which``, ``who`` ... inside
  the question), possessives (``X's``) and ``of the`` phrases, so "the place of
  birth of who does the voice of Stan on the series that Insecurity is part of"
  expects more hops than "Who directed Kiss and Tell?". The loop's hop budget is
  this count, capped by :class:`~retriever.agent.loop.Budget`'s ``max_hops``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from retriever.core.text import STOPWORDS, words

MIN_HOPS = 2
_YES_NO = {"are", "were", "is", "was", "do", "did", "does", "have", "has", "can", "could"}
_CONNECTORS = {"of", "the", "de", "la", "le", "du", "des", "von", "van", "der", "a", "an", "and", "for", "in", "on",
               "at", "to", "&", "y", "el", "di", "da"}
_CUES = {"first", "earlier", "later", "older", "younger", "oldest", "youngest", "both", "same", "more", "less",
         "longer", "shorter", "taller", "bigger", "larger", "smaller", "higher", "lower", "between"}
_RELATION = re.compile(r"(?:\s(?:that|which|who|whom|whose|where|when)\s)|(?:\w's\s)|(?:\sof\s(?:the|a|an)\s)", re.I)
_TOKEN = re.compile(r"\S+")


def asks_yes_no(question: str) -> bool:
    """Whether ``question`` opens with an auxiliary verb ("Are both ...", "Did ..."): a yes / no question."""
    return question.strip().split(" ", 1)[0].lower() in _YES_NO


@dataclass(frozen=True)
class Plan:
    """The parts of a question and the hops it is expected to need.

    Attributes:
        parts: names of the compared entities (empty for a question that is one chain).
        hops: expected documents per chain, at least 2.
        predicate: the question's content words that belong to no part (what each part's
            evidence must cover: "film", "director", "born", "first").
    """

    parts: tuple[str, ...]
    hops: int
    predicate: tuple[str, ...]

    @property
    def comparison(self) -> bool:
        return len(self.parts) >= 2


def plan(question: str, titles: Iterable[str] = ()) -> Plan:
    """Read the compared entities and the expected hop count from ``question``.

    Args:
        question: the question.
        titles: normalized titles the question mentions (:meth:`Lexicon.mention_keys`); a
            title that spans the "or" / "and" ("The Bag or the Bat") is one entity, not two.
    """
    parts = _compared(question.strip(), list(titles))
    part_words = {w for part in parts for w in words(part)}
    predicate = tuple(dict.fromkeys(w for w in words(question) if w not in STOPWORDS and w not in part_words))
    stripped = question.strip().split(" ", 1)[-1]  # the question word itself is no relation
    for part in parts:
        stripped = stripped.replace(part, " X ")
    relations = len(_RELATION.findall(f" {stripped} "))
    hops = MIN_HOPS + max(0, relations - 1) if not parts else MIN_HOPS
    return Plan(parts, hops, predicate)


def _compared(question: str, titles: list[str]) -> tuple[str, ...]:
    """The entity names a comparison question compares, or ()."""
    body = question.rstrip("? ").strip()
    yes_no = asks_yes_no(body)
    if " or " in body:
        left, right = body.rsplit(" or ", 1)
        right = _head_name(_clean(right.split(",", 1)[0]))
        left = _clean(left.rsplit(",", 1)[1]) if "," in left else _tail_name(left)
    elif " and " in body and (yes_no or _CUES & set(words(body))):
        left, right = body.split(" and ", 1)
        if yes_no:
            left = _head_name(left.split(" ", 1)[1], skip_lowercase=True)
        else:
            left = _clean(left.rsplit(",", 1)[1]) if "," in left else _tail_name(left)
        right = _head_name(right, skip_lowercase=yes_no)
    else:
        return ()
    if not (left and right and _looks_named(left) and _looks_named(right)) or left == right:
        return ()
    joint = re.compile(rf" {re.escape(words(left)[-1])} (?:or|and)(?: the| a| an)? {re.escape(words(right)[0])} ")
    return () if any(joint.search(f" {t} ") for t in titles) else (left, right)


def _clean(text: str) -> str:
    text = re.sub(r"^(?:the|a|an|both)\s+", "", text.strip(" ,"), flags=re.I)
    return text.strip(" ,")


def _capitalised(token: str) -> bool:
    return token[:1].isupper() or token[:1].isdigit() or not token[:1].isalpha()


def _head_name(text: str, skip_lowercase: bool = False) -> str:
    """The name at the start of ``text``: capitalised words and the connectors between them (after any
    lowercase words when ``skip_lowercase``: "director of film X" -> "X")."""
    tokens = _TOKEN.findall(_clean(text))
    while skip_lowercase and tokens and not _capitalised(tokens[0]):
        tokens.pop(0)
    taken: list[str] = []
    for token in tokens:
        if _capitalised(token) or (taken and token.lower() in _CONNECTORS):
            taken.append(token)
        else:
            break
    while taken and taken[-1].lower() in _CONNECTORS:
        taken.pop()
    return _clean(" ".join(taken))


def _tail_name(text: str) -> str:
    """The name at the end of ``text`` (read backwards like :func:`_head_name`)."""
    tokens = _TOKEN.findall(text)
    taken: list[str] = []
    for token in reversed(tokens):
        if _capitalised(token) or (taken and token.lower() in _CONNECTORS):
            taken.insert(0, token)
        else:
            break
    while taken and taken[0].lower() in _CONNECTORS:
        taken.pop(0)
    return _clean(" ".join(taken))


def _looks_named(part: str) -> bool:
    """A plausible entity name: a few words, at least one capitalised or a number."""
    tokens = part.split()
    return 0 < len(tokens) <= 12 and any(t[:1].isupper() for t in tokens)
