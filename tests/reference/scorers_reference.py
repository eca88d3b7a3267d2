#!/usr/bin/env python3
"""Reference outputs for colony-scorers, from the packages the scorers imitate.

Generates a deterministic (fixed seed) set of texts -- punctuation, numbers,
accents, CJK, emoji, odd whitespace, empty strings, repeated words, several
references, long and short -- scores them with the official SQuAD v1.1 logic,
sacrebleu, rouge-score, nltk's PorterStemmer, rapidfuzz and jsonschema, and writes
one JSON object per line (inputs and expected outputs).

Usage: scorers_reference.py [--out PATH] [--per-kind N] [--seed S]
Exit code 3 (with a message on stderr) when a package is missing.
"""

import argparse
import importlib.metadata
import collections
import json
import random
import re
import string
import sys

try:
    import jsonschema
    import rapidfuzz
    import sacrebleu
    from nltk.stem.porter import PorterStemmer
    from rapidfuzz.distance import Levenshtein
    from rouge_score import rouge_scorer
except ImportError as e:  # pragma: no cover - environment problem
    print(f"missing Python package: {e.name}; run: pip install -r tests/reference/requirements.txt",
          file=sys.stderr)
    sys.exit(3)


# --- official SQuAD v1.1 evaluation script (verbatim logic) -------------------

def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


# --- text generation ----------------------------------------------------------

WORDS = (
    "the a an The A An THE cat dog sat on mat running runner runs ran happy happiness "
    "generalization relational conditional hopefully caresses ponies skies dying lying "
    "agreed plastered motoring hopping falling filing controlling electrical goodness "
    "adjustment dependent adoption communism activate effective bowdlerize probate "
    "rate cease roll news innings proceed exceed succeed sky fly spied tried flies "
    "model answer question result evaluation provider cluster node tenant bucket "
    "is was be to of and in that it for with as his on at by from they we say "
    "syzygy toy yellow enjoy enjoyment analogousli vietnamization feudalism "
    "sensitiviti formaliti triplicate formative formalize electriciti hopeful "
    "revival allowance inference airliner gyroscopic adjustable defensible irritant "
    "replacement homologou homologous angulariti logi archaeology apologies"
).split()
UNICODE = [
    "café", "naïve", "Straße", "İstanbul", "ΟΔΟΣ", "Σίσυφος", "ΣΑ", "日本語", "中文", "東京",
    "😀", "👍🏽", "🇫🇷", "résumé", "Ångström", "the\u0301", "²the", "_the", "½", "ﬁ", "Ǆ",
    "KELVIN\u212a", "ǅungla", "İİ", "ß", "Ⓐ", "x\u0345", "ﬀ", "ŉ", "ὈΔΥΣΣΕΎΣ", "Ꭰ",
]
NUMBERS = ["3.14", "1,000", "2-3", "-5", "42", "0.5", "1e3", "12:30", "3.", ".5", "100%", "$20"]
PUNCT = list(",.;:!?\"'()[]{}<>-–—/\\@#$%^&*_+=|~`") + ["...", "&amp;", "&quot;", "&lt;", "&gt;", "<skipped>"]
SEPS = [" "] * 12 + ["  ", "\t", "\n", "\u00a0", "\u3000", "\x1c", "\x1f", "\u2009", "-\n", "\u200b"]


def token(rng):
    r = rng.random()
    if r < 0.62:
        return rng.choice(WORDS)
    if r < 0.75:
        return rng.choice(UNICODE)
    if r < 0.86:
        return rng.choice(NUMBERS)
    return rng.choice(PUNCT)


def sentence(rng, lo=0, hi=18):
    n = rng.randint(lo, hi)
    if rng.random() < 0.05:
        n = rng.randint(40, 90)  # long
    out = []
    for i in range(n):
        t = token(rng)
        if out:
            out.append(rng.choice(SEPS) if rng.random() < 0.3 else " ")
        if rng.random() < 0.1 and out:
            out.append(t)  # glued
        else:
            out.append(t)
        if rng.random() < 0.05:
            out.append(" " + t)  # repeated word
    s = "".join(out)
    if rng.random() < 0.1:
        s = " " + s + rng.choice(["", " ", "\n", " .", "  "])
    return s


def mutate(rng, s):
    toks = s.split(" ")
    r = rng.random()
    if r < 0.1:
        return s
    if r < 0.15:
        return ""
    if r < 0.2:
        return s.upper()
    out = []
    for t in toks:
        x = rng.random()
        if x < 0.12:
            continue
        if x < 0.22:
            out.append(token(rng))
        elif x < 0.27:
            out.extend([t, token(rng)])
        else:
            out.append(t)
    if len(out) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def pair(rng):
    """A hypothesis and 1-4 references related to it (or not)."""
    base = sentence(rng)
    k = rng.choice([1, 1, 1, 2, 2, 3, 4])
    refs = [mutate(rng, base) if rng.random() < 0.85 else sentence(rng) for _ in range(k)]
    r = rng.random()
    hyp = refs[0] if r < 0.08 else mutate(rng, base) if r < 0.92 else sentence(rng)
    return hyp, refs


# --- cases --------------------------------------------------------------------

def squad_cases(rng, n):
    fixed = [
        ("The Cat", ["cat"]), ("a an the", ["the"]), ("the\u0301 cat", ["cat"]),
        ("²the cat", ["the cat"]), ("ΟΔΟΣ", ["οδος"]), ("İstanbul", ["i̇stanbul"]),
        ("", [""]), ("x\x1cy", ["x y"]), ("theatre", ["the atre"]), ("an_the a", ["an_the"]),
    ]
    for p, g in fixed:
        yield p, g
    for _ in range(n - len(fixed)):
        hyp, refs = pair(rng)
        if rng.random() < 0.5:  # SQuAD answers are short
            hyp = " ".join(hyp.split(" ")[:4])
            refs = [" ".join(r.split(" ")[:4]) for r in refs]
        yield hyp, refs


def gen(rng, per_kind):
    for pred, gts in squad_cases(rng, per_kind):
        yield {
            "kind": "squad", "prediction": pred, "references": gts,
            "exact_match": metric_max_over_ground_truths(exact_match_score, pred, gts),
            "f1": float(metric_max_over_ground_truths(f1_score, pred, gts)),
        }

    bleu = sacrebleu.BLEU(effective_order=True)
    chrf = sacrebleu.CHRF()
    chrf_eps = sacrebleu.CHRF(eps_smoothing=True)
    for i in range(per_kind):
        hyp, refs = pair(rng)
        if i == 0:
            hyp, refs = "", ["a b c"]
        elif i == 1:
            hyp, refs = "the cat", ["the cat", "a cat sat"]
        b = sacrebleu.sentence_bleu(hyp, refs)
        stats = bleu._extract_corpus_statistics([hyp], [[r] for r in refs])[0]
        yield {
            "kind": "bleu", "hypothesis": hyp, "references": refs, "score": b.score,
            "stats": [int(x) for x in stats],
            "tokenized": bleu.tokenizer(hyp.rstrip()),
        }
        c = sacrebleu.sentence_chrf(hyp, refs)
        ce = sacrebleu.sentence_chrf(hyp, refs, eps_smoothing=True)
        cstats = chrf._extract_corpus_statistics([hyp], [[r] for r in refs])[0]
        yield {
            "kind": "chrf", "hypothesis": hyp, "references": refs, "score": c.score,
            "score_eps": ce.score, "stats": [int(x) for x in cstats],
        }
        assert chrf_eps is not None

    for i in range(max(3, per_kind // 6)):
        n_seg = rng.randint(1, 12)
        k = rng.choice([1, 1, 2, 3])
        hyps, refs = [], []
        for _ in range(n_seg):
            h, r = pair(rng)
            r = (r * k)[:k]
            hyps.append(h)
            refs.append(r)
        streams = [[refs[s][j] for s in range(n_seg)] for j in range(k)]
        yield {
            "kind": "corpus", "hypotheses": hyps, "references": refs,
            "bleu": sacrebleu.corpus_bleu(hyps, streams).score,
            "chrf": sacrebleu.corpus_chrf(hyps, streams).score,
            "chrf_eps": sacrebleu.corpus_chrf(hyps, streams, eps_smoothing=True).score,
        }

    scorers = {
        stem: rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
        for stem in (False, True)
    }
    for i in range(per_kind):
        hyp, refs = pair(rng)
        stem = i % 2 == 1
        s = scorers[stem].score_multi(refs, hyp)
        yield {
            "kind": "rouge", "prediction": hyp, "targets": refs, "use_stemmer": stem,
            **{k: [v.precision, v.recall, v.fmeasure] for k, v in s.items()},
        }

    stemmer = PorterStemmer()
    suffixes = ["", "s", "es", "ies", "ied", "ed", "ing", "ly", "ational", "tional", "izer",
                "ization", "fulness", "ousness", "iveness", "alli", "bli", "logi", "fulli",
                "ement", "ance", "ence", "able", "ible", "ion", "sion", "tion", "ism", "ate",
                "iti", "ous", "ive", "ize", "al", "er", "ness", "ful", "ical", "eed", "ll", "y"]
    words = sorted(set(w.lower() for w in WORDS if w.isalpha()))
    seen = set()
    porter_n = per_kind * 3
    while len(seen) < porter_n:
        r = rng.random()
        if r < 0.4:
            w = rng.choice(words) + rng.choice(suffixes)
        elif r < 0.7:
            w = "".join(rng.choice("aeiouybcdlmnprstyyz") for _ in range(rng.randint(1, 10))) + rng.choice(suffixes)
        else:
            w = rng.choice(words)
        if w in seen:
            continue
        seen.add(w)
        yield {"kind": "porter", "word": w, "stem": stemmer.stem(w)}

    for i in range(per_kind):
        if rng.random() < 0.5:
            a, refs = pair(rng)
            b = refs[0]
        else:
            a = "".join(rng.choice("abcé日😀 ") for _ in range(rng.randint(0, 30)))
            b = "".join(rng.choice("abcé日😀 ") for _ in range(rng.randint(0, 30)))
        yield {
            "kind": "levenshtein", "a": a, "b": b,
            "distance": Levenshtein.distance(a, b),
            "similarity": Levenshtein.normalized_similarity(a, b),
        }

    for i in range(per_kind):
        hyp, refs = pair(rng)
        needle = rng.choice(refs)
        if rng.random() < 0.5 and len(hyp) > 2:
            j = rng.randrange(len(hyp) - 1)
            needle = hyp[j:j + rng.randint(1, 8)].swapcase()
        yield {"kind": "icontains", "output": hyp, "needle": needle,
               "expected": needle.lower() in hyp.lower()}

    yield from schema_cases(rng, per_kind)


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "minLength": 2, "maxLength": 5},
                                      "age": {"type": "integer", "minimum": 0, "maximum": 150}},
     "required": ["name"], "additionalProperties": False},
    {"type": "array", "items": {"enum": [1, "a", None, True]}, "minItems": 1, "uniqueItems": True},
    {"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "number", "exclusiveMinimum": 3}]},
    {"oneOf": [{"type": "integer"}, {"type": "number", "multipleOf": 0.5}]},
    {"allOf": [{"type": "object", "required": ["a"]}, {"properties": {"a": {"const": [1, {"b": 2}]}}}]},
    {"type": ["string", "null"], "not": {"const": "x"}},
    {"$defs": {"pos": {"type": "number", "minimum": 0}},
     "type": "object", "properties": {"p": {"$ref": "#/$defs/pos"}},
     "patternProperties": {"^x_": {"type": "boolean"}}, "additionalProperties": {"type": "string"}},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {"type": "array", "contains": {"type": "string"}, "minContains": 2, "maxContains": 3},
    {"if": {"type": "object", "required": ["kind"]}, "then": {"required": ["value"]},
     "else": {"type": "string"}},
    {"type": "object", "propertyNames": {"maxLength": 3}, "dependentRequired": {"a": ["b"]},
     "minProperties": 1, "maxProperties": 3},
]


def random_json(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.35:
        return rng.choice([None, True, False, 0, 1, 2, 3, 3.5, 4.0, -1, 7.25, 1e20, "", "a", "abc",
                           "x", "ABC", "hello", "日本", "é"])
    if r < 0.65:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["name", "age", "a", "b", "p", "x_1", "x_2", "kind", "value", "long_key", "q"]
    return {k: random_json(rng, depth + 1) for k in rng.sample(keys, rng.randint(0, 4))}


def schema_cases(rng, n):
    hand = [
        (0, {"name": "bob", "age": 30}), (0, {"name": "bob", "age": 30.0}), (0, {"name": "b"}),
        (0, {"name": "bob", "extra": 1}), (1, [1, "a"]), (1, [1, 1.0]), (1, [True, 1]),
        (2, "abc"), (2, 3), (2, 3.5), (3, 2), (3, 2.5), (3, 2.0), (4, {"a": [1.0, {"b": 2}]}),
        (5, None), (5, "x"), (6, {"p": 1, "x_1": True, "z": "s"}), (6, {"p": -1}),
        (7, ["a", 1]), (7, ["a", 1, 2]), (8, ["a", "b"]), (8, ["a"]), (9, {"kind": 1}),
        (10, {"a": 1}), (10, {"abcd": 1}),
    ]
    for idx, inst in hand:
        yield schema_case(idx, inst)
    for _ in range(n):
        idx = rng.randrange(len(SCHEMAS))
        yield schema_case(idx, random_json(rng))


def schema_case(idx, inst):
    schema = SCHEMAS[idx]
    valid = jsonschema.Draft202012Validator(schema).is_valid(inst)
    return {"kind": "json_schema", "schema": schema, "instance": inst, "valid": valid}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="-")
    ap.add_argument("--per-kind", type=int, default=120)
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    header = {"kind": "meta", "versions": {
        "sacrebleu": sacrebleu.__version__, "rapidfuzz": rapidfuzz.__version__,
        "jsonschema": importlib.metadata.version("jsonschema"), "python": sys.version.split()[0],
        "unicode": __import__("unicodedata").unidata_version}}
    out.write(json.dumps(header, ensure_ascii=False) + "\n")
    for case in gen(rng, args.per_kind):
        out.write(json.dumps(case, ensure_ascii=False) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
