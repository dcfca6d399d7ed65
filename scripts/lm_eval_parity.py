#!/usr/bin/env python3
"""Ground-truth fixtures from the REAL lm-evaluation-harness code (lm-eval 0.4.13, PyPI).

What it writes (paths relative to the repository root, /work/acc):

  tests/fixtures/lm_eval_parity.jsonl
      One JSON object per line:
        {"response": str, "target": str,
         "filters": {"strict-match":     {"extracted": str, "exact_match": 0|1},
                     "flexible-extract": {"extracted": str, "exact_match": 0|1}}}
      `target` is the full `answer` string of a gsm8k test doc.  Extraction and scoring are
      done by lm-eval's own ConfigurableTask built from the packaged
      lm_eval/tasks/gsm8k/gsm8k.yaml: its FilterEnsembles (RegexFilter + TakeFirstFilter,
      configured from filter_list) and its process_results() (which calls lm-eval's
      exact_match_hf_evaluate with the yaml's regexes_to_ignore / ignore_case /
      ignore_punctuation).  Every row is cross-checked against a standalone
      RegexFilter/TakeFirstFilter/exact_match_hf_evaluate pipeline.

  tests/fixtures/gsm8k_fewshot.json
      {"seed": 1234, "num_fewshot": 5, "train_size": 7473,
       "docs": [{"doc_index": i, "train_indices": [5 ints], "prompt": str}, ...first 12 test docs],
       "python_sample_check": {...plain stdlib random values...}}
      Produced by the task machinery exactly as `lm_eval --tasks gsm8k --limit 12` does it
      (simple_evaluate -> task.set_fewshot_seed(1234) -> evaluate -> build_all_requests(limit=12)),
      except that the dataset is loaded from the local jsonl files with the `datasets` "json"
      builder (dataset_path/dataset_name/dataset_kwargs overridden) because there is no HF hub
      access.  train_indices are recovered by identity: the (question, answer) of each sampled
      doc looked up in train.jsonl (all 7473 train pairs are unique; asserted).  Cross-checked
      against a bare ContextSampler(train_docs).set_rnd(1234) and a hand-rendered prompt.

  tests/fixtures/hypothesis_threshold.json
      scipy.stats.norm.ppf based threshold/theta values:
        se        = sqrt(2*sigma^2/n)
        threshold = ref + ppf(alpha) * se
        theta     = -(ppf(alpha) + ppf(beta)) * se

How to rerun (no torch/transformers needed; nothing is stubbed):

  python3.11 -m venv /tmp/lmeval-venv
  /tmp/lmeval-venv/bin/pip install lm-eval==0.4.13 --no-deps
  /tmp/lmeval-venv/bin/pip install numpy sacrebleu jinja2 pyyaml scipy datasets tqdm requests \
      more_itertools typing_extensions
  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 /tmp/lmeval-venv/bin/python scripts/lm_eval_parity.py

(Versions used when the fixtures were generated: lm-eval 0.4.13, numpy 2.4.6, scipy 1.17.1,
datasets 5.2.0, sacrebleu 2.6.0, Jinja2 3.1.6, CPython 3.11.7.)
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", "/tmp/lmeval-hf-datasets-cache")

import lm_eval  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.metrics import exact_match_hf_evaluate  # noqa: E402
from lm_eval.api.samplers import ContextSampler  # noqa: E402
from lm_eval.evaluator_utils import get_sample_size  # noqa: E402
from lm_eval.filters.extraction import RegexFilter  # noqa: E402
from lm_eval.filters.selection import TakeFirstFilter  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)
for _name in ("lm_eval", "datasets"):
    logging.getLogger(_name).setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "stress-cases" / "data" / "gsm8k"
FIXTURES = ROOT / "tests" / "fixtures"

FEWSHOT_SEED = 1234  # lm_eval.defaults.DEFAULT_OTHER_SEED == simple_evaluate's fewshot_random_seed default
LIMIT = 12


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_gsm8k_task():
    """Build the packaged gsm8k task through TaskManager's own factory (same code path as
    loading the name "gsm8k"), overriding only where the data comes from."""
    tm = TaskManager()
    entry = tm._entry("gsm8k")
    assert entry is not None and entry.yaml_path is not None
    overrides = {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {
            "data_files": {
                "train": str(DATA / "train.jsonl"),
                "test": str(DATA / "test.jsonl"),
            }
        },
    }
    task = tm._factory.build(entry, overrides=overrides, registry=tm._index)
    return task, Path(entry.yaml_path)


# --------------------------------------------------------------------------- (a) filters + metric

LONG_RESPONSE = (
    "Let me think step by step.\n"
    + "".join(
        f"Step {k}: we have {k} * 3 = {k * 3} eggs, and 16 - 3 - 4 = 9, 9 * 2 = 18.\n"
        for k in range(1, 201)
    )
    + "So she makes 9 * $2 = $18 every day at the farmers' market.\n#### 18"
)

# (response, test doc index whose full `answer` is the target)
# doc 0 -> "#### 18", doc 1113 -> "#### -3", doc 489 -> "#### -10",
# doc 611 -> "#### 1,450,000", doc 146 -> "#### 2,125", doc 201 -> "#### 114,200"
CASES: list[tuple[str | None, int]] = [
    (None, 0),  # None = the doc's own answer string
    ("The answer is 18.", 0),
    ("#### 18", 0),
    ("#### 18.", 0),
    ("18.\n", 0),
    ("#### 18\n", 0),
    ("18", 0),
    ("18.0", 0),
    ("#### 18.00", 0),
    ("#### 18,", 0),
    ("18. ", 0),
    ("18\n\n", 0),
    ("#### 18\r\n", 0),
    ("The answer is 18!", 0),
    ("The answer is: **18**", 0),
    ("Answer: 18 ducks.", 0),
    ("#### 18 dollars", 0),
    ("####18", 0),
    ("#### -18", 0),
    ("#### - 18", 0),
    ("$18", 0),
    ("#### $18", 0),
    ("She makes 9 * 2 = $18 every day.\n#### 18", 0),
    ("#### 16\n#### 18", 0),
    ("#### 18\n#### 16", 0),
    ("#### 18\n\nQuestion: Tom has 3 apples and eats 1. How many are left?\nAnswer: 2", 0),
    ("The total is 18.5 but the answer is 18", 0),
    ("18, 19, 20", 0),
    ("答案是 18", 0),
    ("18 €", 0),
    ("１８", 0),  # full-width digits
    ("١٨", 0),  # Arabic-Indic digits
    ("abc18def", 0),
    ("x18y and 2b", 0),
    ("1.2.3", 0),
    ("#### 1.2.3", 0),
    ("$1,234.", 0),
    ("#### 1,234.50", 0),
    ("I don't know.", 0),
    ("", 0),
    ("   \n\t ", 0),
    ("-", 0),
    ("$", 0),
    ("$$", 0),
    ("..", 0),
    (",,", 0),
    ("-.5", 0),
    ("18\x00", 0),
    ("18..", 0),
    ("#### 18..", 0),
    ("#### 18.,", 0),
    ("#### 18,.", 0),
    ("#### 1,8", 0),
    ("#### 018", 0),
    ("#### 18.\n\n", 0),
    ("#### 18 \n#### ", 0),
    (LONG_RESPONSE, 0),
    (None, 1113),
    ("#### -3", 1113),
    ("The answer is -3.", 1113),
    ("-3", 1113),
    ("#### 3", 1113),
    ("#### - 3", 1113),
    ("\u22123", 1113),  # unicode minus sign
    ("-3.0", 1113),
    ("-3.5", 1113),
    ("#### -10", 489),
    ("-10.", 489),
    ("#### -10.50", 489),
    ("-0.5 and then -10", 489),
    (None, 611),
    ("#### 1,450,000", 611),
    ("1450000", 611),
    ("$1,450,000.", 611),
    ("#### 1.450.000", 611),
    ("1,450,000.00", 611),
    (None, 146),
    ("2,125", 146),
    ("2125", 146),
    ("$2,125.", 146),
    ("#### 2125", 146),
    ("#### 2,125.\n", 146),
    ("#### 114,200", 201),
    ("The answer is $114,200.", 201),
]


def standalone_extract(cfg_filters: list[dict], response: str) -> str:
    """RegexFilter(+TakeFirstFilter) instantiated directly from a yaml filter pipeline."""
    resps: object = [[response]]
    for step in cfg_filters:
        kwargs = {k: v for k, v in step.items() if k != "function"}
        if step["function"] == "regex":
            resps = RegexFilter(**kwargs).apply(resps, [None])
        elif step["function"] == "take_first":
            resps = TakeFirstFilter().apply(resps, [None])
        else:
            raise ValueError(step)
    return list(resps)[0]


def make_parity(task, test_docs: list[dict]) -> tuple[list[dict], dict]:
    metric_kwargs = dict(task._metric_fn_kwargs["exact_match"])
    filter_list = task.config.filter_list
    filter_names = [f.name for f in task._filters]
    assert filter_names == ["strict-match", "flexible-extract"], filter_names

    rows = []
    for n, (resp, doc_idx) in enumerate(CASES):
        doc = test_docs[doc_idx]
        target = doc["answer"]
        response = target if resp is None else resp
        inst = Instance(
            request_type="generate_until",
            doc=doc,
            arguments=("ctx", {}),
            idx=0,
            metadata=("gsm8k", n, 1),
        )
        inst.resps = [response]
        filters = {}
        for ens in task._filters:  # task.apply_filters() does exactly this over all instances
            ens.apply([inst])
            extracted = inst.filtered_resps[ens.name]
            res = task.process_results(doc, [extracted])
            em = res["exact_match"]
            assert em in (0.0, 1.0), em
            # standalone cross-check
            fcfg = next(f for f in filter_list if f["name"] == ens.name)["filter"]
            ex2 = standalone_extract(fcfg, response)
            em2 = exact_match_hf_evaluate(
                predictions=[ex2], references=[target], **metric_kwargs
            )["exact_match"]
            assert ex2 == extracted and float(em2) == float(em), (response, ex2, extracted, em2, em)
            filters[ens.name] = {"extracted": extracted, "exact_match": int(em)}
        rows.append({"response": response, "target": target, "filters": filters})
    return rows, metric_kwargs


# --------------------------------------------------------------------------- (b) few-shot prompts


def make_fewshot(task, train_docs: list[dict], test_docs: list[dict]) -> dict:
    key_to_idx: dict[tuple[str, str], int] = {}
    for i, d in enumerate(train_docs):
        k = (d["question"], d["answer"])
        assert k not in key_to_idx, f"duplicate train doc {i}"
        key_to_idx[k] = i

    # the sampler's pool must be train.jsonl in file order
    pool = task.sampler.fewshot_docs()
    assert len(pool) == len(train_docs)
    assert all(dict(a) == b for a, b in zip(pool, train_docs))

    num_fewshot = task.get_config("num_fewshot")
    assert num_fewshot == 5

    # --- what simple_evaluate() does: fewshot_random_seed default is DEFAULT_OTHER_SEED (1234)
    task.set_fewshot_seed(seed=FEWSHOT_SEED)

    # record which docs the real sampler hands out (pure observer, does not change behaviour)
    chosen: list[list[int]] = []
    orig_sample = task.sampler.sample

    def recording_sample(*args, **kwargs):
        res = orig_sample(*args, **kwargs)
        chosen.append([key_to_idx[(d["question"], d["answer"])] for d in res])
        return res

    task.sampler.sample = recording_sample

    # --- what evaluate() does
    limit = get_sample_size(task, LIMIT)
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    insts = sorted(task.instances, key=lambda x: x.doc_id)
    assert [i.doc_id for i in insts] == list(range(LIMIT))
    assert len(chosen) == LIMIT

    # --- cross-check 1: bare ContextSampler over the plain train list, one shared RNG
    bare = ContextSampler(train_docs, rnd=None).set_rnd(FEWSHOT_SEED)
    # --- cross-check 2: plain stdlib sampling of indices
    rnd = random.Random(FEWSHOT_SEED)

    docs_out = []
    for i, inst in enumerate(insts):
        doc = test_docs[i]
        assert dict(inst.doc) == doc
        prompt = inst.args[0]
        bare_docs = bare.sample(n=num_fewshot)
        bare_idx = [key_to_idx[(d["question"], d["answer"])] for d in bare_docs]
        plain_idx = rnd.sample(range(len(train_docs)), num_fewshot)
        assert bare_idx == chosen[i] == plain_idx, (i, bare_idx, chosen[i], plain_idx)
        manual = "".join(
            f"Question: {train_docs[j]['question']}\nAnswer: {train_docs[j]['answer']}\n\n"
            for j in chosen[i]
        ) + f"Question: {doc['question']}\nAnswer:"
        assert manual == prompt, i
        docs_out.append({"doc_index": i, "train_indices": chosen[i], "prompt": prompt})

    r = random.Random(1234)
    check = {
        "seed_1234_three_samples_range_7473_k5": [r.sample(range(7473), 5) for _ in range(3)],
        "seed_7_sample_range_10_k4": random.Random(7).sample(range(10), 4),
    }
    assert check["seed_1234_three_samples_range_7473_k5"][0] == docs_out[0]["train_indices"]

    return {
        "seed": FEWSHOT_SEED,
        "num_fewshot": num_fewshot,
        "train_size": len(train_docs),
        "docs": docs_out,
        "python_sample_check": check,
        "generation_kwargs": insts[0].args[1],
    }


# --------------------------------------------------------------------------- (d) thresholds


def make_thresholds() -> dict:
    import scipy
    from scipy.stats import norm

    combos = [
        (50.0, 1319, 94.54, 0.05, 0.2),
        (50.0, 1319, 94.54, 0.01, 0.1),
        (45.0, 500, 80.0, 0.025, 0.2),
        (20.5, 10000, 75.25, 0.1, 0.05),
    ]
    out = []
    for sigma, n, ref, alpha, beta in combos:
        z_a = float(norm.ppf(alpha))
        z_b = float(norm.ppf(beta))
        se = math.sqrt(2 * sigma**2 / n)
        out.append(
            {
                "sigma": sigma,
                "n": n,
                "ref": ref,
                "alpha": alpha,
                "beta": beta,
                "ppf_alpha": z_a,
                "ppf_beta": z_b,
                "se": se,
                "threshold": ref + z_a * se,
                "theta": -(z_a + z_b) * se,
            }
        )
    return {
        "formula": {
            "se": "sqrt(2*sigma^2/n)",
            "threshold": "ref + norm.ppf(alpha)*se",
            "theta": "-(norm.ppf(alpha)+norm.ppf(beta))*se",
        },
        "scipy_version": scipy.__version__,
        "cases": out,
    }


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    train_docs = read_jsonl(DATA / "train.jsonl")
    test_docs = read_jsonl(DATA / "test.jsonl")
    task, yaml_path = build_gsm8k_task()

    rows, metric_kwargs = make_parity(task, test_docs)
    with open(FIXTURES / "lm_eval_parity.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    fewshot = make_fewshot(task, train_docs, test_docs)
    with open(FIXTURES / "gsm8k_fewshot.json", "w", encoding="utf-8") as f:
        json.dump(fewshot, f, ensure_ascii=False, indent=1)
        f.write("\n")

    with open(FIXTURES / "hypothesis_threshold.json", "w", encoding="utf-8") as f:
        json.dump(make_thresholds(), f, indent=1)
        f.write("\n")

    print(f"lm-eval {lm_eval.__version__}; yaml {yaml_path}", file=sys.stderr)
    print(f"exact_match kwargs: {metric_kwargs}", file=sys.stderr)
    print(f"filter_list: {task.config.filter_list}", file=sys.stderr)
    print(f"wrote {len(rows)} parity rows, {len(fewshot['docs'])} few-shot docs", file=sys.stderr)


if __name__ == "__main__":
    main()
