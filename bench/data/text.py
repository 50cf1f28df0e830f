"""Text of the shapes world: canonical captions, paraphrases that share few words, class names,
questions and answers. Every string is lower case, words separated by single spaces.

The paraphrases are the point of the world (the paper's argument): many surface forms of one
meaning. A token-space model must spend capacity on which words were chosen; an embedding-space
model only needs the meaning.
"""

from __future__ import annotations

import re

import numpy as np

from bench.data.world import Obj, Scene

COLOUR_WORDS = {
    "red": ["red", "crimson", "scarlet"],
    "green": ["green", "emerald", "lime"],
    "blue": ["blue", "azure", "navy"],
    "yellow": ["yellow", "golden", "lemon"],
    "purple": ["purple", "violet", "lilac"],
    "orange": ["orange", "amber", "tangerine"],
}
SHAPE_WORDS = {  # the last word of each list is the hypernym: a paraphrase may leave the shape unsaid
    "circle": ["circle", "disc", "round blob", "object"],
    "square": ["square", "box", "block", "object"],
    "triangle": ["triangle", "wedge", "three sided shape", "object"],
    "star": ["star", "starburst", "five pointed star", "object"],
    "cross": ["cross", "plus sign", "cross mark", "object"],
    "diamond": ["diamond", "rhombus", "lozenge", "object"],
}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big", "huge"]}
MOTION_WORDS = {  # verb phrases, third person
    "left": ["moves left", "slides to the left", "drifts leftward", "travels west"],
    "right": ["moves right", "slides to the right", "drifts rightward", "travels east"],
    "up": ["moves up", "rises", "climbs upward", "floats toward the top"],
    "down": ["moves down", "sinks", "drops downward", "falls toward the bottom"],
    "grow": ["grows", "gets bigger", "expands", "swells"],
    "shrink": ["shrinks", "gets smaller", "contracts", "dwindles"],
    "rotate": ["rotates", "spins", "turns around", "twirls"],
    "still": ["stays still", "does not move", "remains motionless", "sits in place"],
}
EVENT_WORDS = {
    "light_off": ["the light goes out", "the room goes dark", "everything dims", "darkness falls"],
    "light_on": ["the light comes on", "the room brightens", "the lamp switches on", "everything lights up"],
}
NEAR_WORDS = ["next to", "beside", "near", "alongside"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four"]

# sentence frames: {A} actor phrase with size, {a} without, {M} motion, {D} distractors, {E} event
TEMPLATES = [
    "{A} {M}{D}{E}",
    "there is {a} that {M}{D}{E}",
    "in this clip {A} {M}{D}{E}",
    "we see {A} as it {M}{D}{E}",
    "{a} {M}{D}{E}",
    "watch {A} that {M}{D}{E}",
]
EVENT_JOINS = [" then {e}", " while {e}", " and {e}", " as {e}"]

CAPTION_QUERY = "describe the video"
CLASSIFY_QUERY = "what action is happening"
CLASS_PROMPTS = ["{}", "a {}", "in this clip a {}"]  # caption-like, so pretraining alone can score them

# questions of the discriminative VQA items; answers are single words from the candidate lists
QUESTIONS = {
    "colour": "what colour is the {shape}",
    "shape": "what shape is the {colour} object",
    "counting": "how many objects are there",
    "existence": "is there a {colour} {shape}",
    "motion": "what is the {colour} {shape} doing",
}
YES_NO = ["yes", "no"]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(o: Obj, rng: np.random.Generator | None, with_size: bool) -> str:
    words = [] if not with_size else [SIZE_WORDS[o.size][0] if rng is None else _pick(rng, SIZE_WORDS[o.size])]
    words.append(COLOUR_WORDS[o.colour][0] if rng is None else _pick(rng, COLOUR_WORDS[o.colour]))
    words.append(SHAPE_WORDS[o.shape][0] if rng is None else _pick(rng, SHAPE_WORDS[o.shape]))
    phrase = " ".join(words)
    return f"{_article(phrase)} {phrase}"


def caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """The canonical caption (rng=None: first synonym, first template) or a random paraphrase."""
    actor = scene.actor
    tmpl = TEMPLATES[0] if rng is None else _pick(rng, TEMPLATES)
    big = _noun_phrase(actor, rng, with_size=True)
    small = _noun_phrase(actor, rng, with_size=False)
    motion = MOTION_WORDS[actor.motion][0] if rng is None else _pick(rng, MOTION_WORDS[actor.motion])
    distractors = ""
    if len(scene.objects) > 1:
        near = NEAR_WORDS[0] if rng is None else _pick(rng, NEAR_WORDS)
        others = " and ".join(_noun_phrase(o, rng, with_size=False) for o in scene.objects[1:])
        distractors = f" {near} {others}"
    event = ""
    if scene.event != "none":
        join = EVENT_JOINS[0] if rng is None else _pick(rng, EVENT_JOINS)
        e = EVENT_WORDS[scene.event][0] if rng is None else _pick(rng, EVENT_WORDS[scene.event])
        event = join.format(e=e)
    return tmpl.format(A=big, a=small, M=motion, D=distractors, E=event)


def paraphrases(scene: Scene, n: int, rng: np.random.Generator) -> list[str]:
    """The canonical caption followed by up to n-1 distinct random paraphrases."""
    out = [caption(scene)]
    for _ in range(50 * n):
        if len(out) >= n:
            break
        p = caption(scene, rng)
        if p not in out:
            out.append(p)
    return out


def class_name(label: tuple[str, str]) -> str:
    """A class in the captions' own words: "red object moves left" or "square moves left"."""
    what, motion = label
    noun = f"{COLOUR_WORDS[what][0]} object" if what in COLOUR_WORDS else SHAPE_WORDS[what][0]
    return f"{noun} {MOTION_WORDS[motion][0]}"


def motion_answer(o: Obj) -> str:
    return MOTION_WORDS[o.motion][0]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' word sets."""
    sa, sb = set(words(a)), set(words(b))
    return len(sa & sb) / max(1, len(sa | sb))


def vocabulary() -> list[str]:
    """Every word any text of the world can contain, sorted (the tiny tokenizer's vocabulary)."""
    pieces: list[str] = [CAPTION_QUERY, CLASSIFY_QUERY, *CLASS_PROMPTS, *TEMPLATES, *EVENT_JOINS,
                         *NEAR_WORDS, *NUMBER_WORDS, *YES_NO, *QUESTIONS.values(), "an a and"]
    for table in (COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS, MOTION_WORDS, EVENT_WORDS):
        for options in table.values():
            pieces.extend(options)
    pieces.extend(COLOUR_WORDS)
    pieces.extend(SHAPE_WORDS)
    vocab = {w for p in pieces for w in words(re.sub(r"\{[a-z]*\}", " ", p))}
    return sorted(vocab)


ATTRIBUTES = ("colour", "size", "motion", "distractor", "event")


def _first(text: str, table: dict[str, list[str]]) -> tuple[int, str]:
    """(position, meaning) of the earliest phrase of the table in text (whole words), or (len, "none")."""
    best = (len(text), "none")
    for meaning, phrases in table.items():
        for phrase in phrases:
            m = re.search(rf"\b{re.escape(phrase)}\b", text)
            if m and m.start() < best[0]:
                best = (m.start(), meaning)
    return best


def read_caption(text: str) -> dict[str, str]:
    """What a caption of the world says, in the world's own terms, read from any paraphrase: the actor's
    colour, size and motion, the first distractor's colour ("none" without one) and the light event ("none"
    without one). An attribute a caption leaves unsaid reads "none" (a paraphrase may leave out the size).
    The canonical caption reads exactly as its scene (tests/test_data.py checks every paraphrase)."""
    text = " ".join(words(text))
    near, _ = _first(text, {"near": NEAR_WORDS})
    actor, rest = text[:near], text[near:]
    return {"colour": _first(actor, COLOUR_WORDS)[1], "size": _first(actor, SIZE_WORDS)[1],
            "motion": _first(actor, MOTION_WORDS)[1], "distractor": _first(rest, COLOUR_WORDS)[1],
            "event": _first(text, EVENT_WORDS)[1]}


# what canonical_wording maps to the first synonym of its slot (a shape's hypernym "object" is left: it names
# no shape, so mapping it would add a fact the caption does not state)
_SLOTS = [COLOUR_WORDS, SIZE_WORDS, MOTION_WORDS, EVENT_WORDS, {"near": NEAR_WORDS},
          {k: v[:-1] for k, v in SHAPE_WORDS.items()}]
_SYNONYMS = sorted(((phrase, words_[0]) for table in _SLOTS for words_ in table.values() for phrase in words_[1:]),
                   key=lambda pw: -len(pw[0]))  # longest first: "cross mark" before "cross"
_FRAMES = ("there is ", "in this clip ", "we see ", "watch ")  # the templates' openings before the actor
_MOTION_RE = "|".join(re.escape(v[0]) for v in MOTION_WORDS.values())
_EVENT_RE = "|".join(re.escape(v[0]) for v in EVENT_WORDS.values())


def canonical_wording(text: str) -> str:
    """A caption of the world rewritten in the canonical caption's words, its facts unchanged: every synonym
    as the first of its slot, the template's frame dropped ("there is ... that", "we see ... as it"), the
    event joined by "then", articles agreed. Any paraphrase that states the size and names each shape reads
    exactly as the canonical caption (tests/test_caption_wording.py); what a caption leaves unsaid stays
    unsaid, so CIDEr on canonical wording scores the facts a caption states and not which synonyms it chose."""
    t = " ".join(words(text))
    for phrase, first in _SYNONYMS:
        t = re.sub(rf"\b{re.escape(phrase)}\b", first, t)
    for frame in _FRAMES:
        if t.startswith(frame):
            t = t[len(frame):]
            break
    t = re.sub(rf"\b(?:that|as it) (?=(?:{_MOTION_RE})\b)", "", t)
    t = re.sub(rf"\b(?:while|and|as) (?=(?:{_EVENT_RE})\b)", "then ", t)
    return re.sub(r"\b(?:a|an) (\w+)", lambda m: f"{_article(m.group(1))} {m.group(1)}", t)


def scene_reading(scene: Scene) -> dict[str, str]:
    """read_caption's answer for a scene: what a correct caption of it says."""
    actor = scene.actor
    return {"colour": actor.colour, "size": actor.size, "motion": actor.motion,
            "distractor": scene.objects[1].colour if len(scene.objects) > 1 else "none", "event": scene.event}
