#!/usr/bin/env python3
"""Loglikelihood parity fixture from the REAL lm-evaluation-harness code (lm-eval 0.4.13, PyPI).

Reads (paths relative to the repository root):

  tests/fixtures/mmlu_loglik.jsonl       six MMLU-style docs (int answers, some with `subject`)
  tests/fixtures/loglik_recorded.json    completions responses of llm-stress's embedded server to
                                         the `mmlu` task's requests on those docs (written by
                                         `LLM_STRESS_RECORD_FIXTURES=1 cargo nextest run --test
                                         pipeline -E 'test(/loglik_parity/)'`)
  tests/fixtures/loglik_hand_made.json   hand-made responses: ties, a continuation whose tokens
                                         split oddly (one straddling the boundary), choices of
                                         different lengths (acc and acc_norm disagree), a BOS
                                         token, a tie at the top, trailing white space

Writes tests/fixtures/loglik_parity.json: for every case (recorded and hand-made), in order:

  {"id": str,
   "payloads": [the JSON body lm-eval's local-completions sends for each choice],
   "results": [[loglikelihood, is_greedy] for each choice],
   "acc": 0.0|1.0, "acc_norm": 0.0|1.0,
   and for recorded cases "context" and "arguments": lm-eval's own prompt and
   [context, continuation] request arguments for the doc}

What runs lm-eval's code, and what does not:

  * payloads: LocalCompletionsAPI._create_payload(generate=False) on the message that
    TemplateAPI.create_message makes of the text prompt with tokenized_requests=False and
    batch_size 1 (lm-eval's mode for APIs without token input): the prompt is the text
    context + continuation.  Both are called unbound on a bare object holding only the
    attributes they read (`model`, `tokenized_requests`, `_batch_size`): constructing the model
    would load a tokenizer (transformers) and reach the network.
  * results: LocalCompletionsAPI.parse_logprobs(outputs, ctxlens=[ctxlen]), a staticmethod,
    called as is.  `ctxlen` is what lm-eval's tokenizer would count for the context; lm-eval
    has no tokenizer of the embedded server's words (one token a word, white space before it),
    so ctxlen is taken from the case file: for recorded cases the context's word count (the
    embedded server's /tokenize count), for hand-made cases stated by hand.  The Rust test
    checks that llm-stress's text-offset rule finds the same ctxlen.
  * acc / acc_norm: ConfigurableTask.process_results of the packaged MMLU task (built through
    TaskManager from lm_eval/tasks/mmlu/default, dataset overridden to the local jsonl, and
    metric_list overridden to [acc, acc_norm]: the packaged yaml lists acc alone) for
    recorded cases.  Hand-made cases have their own choices (words of different lengths), so
    process_results runs on the same task object with doc_to_choice / doc_to_target replaced
    by the case's (the method's multiple_choice branch is lm-eval's code either way).
  * context / arguments: the packaged task's fewshot_context(doc, 0) and construct_requests
    (description from the subject's yaml, doc_to_text, target_delimiter " ", choices A-D).
    Docs without `subject` use mmlu_anatomy with the description overridden to "".

How to rerun (no torch/transformers needed): make the environment that
scripts/lm_eval_parity.py's docstring describes, add `aiohttp tenacity` to it, then

  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 /tmp/lmeval-venv/bin/python scripts/lm_eval_loglik_parity.py

(Versions when the fixture was generated: lm-eval 0.4.13, numpy 2.4.6, datasets 5.2.0,
CPython 3.11.7.)
"""

from __future__ import annotations

import json
import logging
import os
import types
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", "/tmp/lmeval-hf-datasets-cache")

from lm_eval.models.api_models import TemplateAPI  # noqa: E402
from lm_eval.models.openai_completions import LocalCompletionsAPI  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)
for _name in ("lm_eval", "datasets"):
    logging.getLogger(_name).setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DOCS = FIXTURES / "mmlu_loglik.jsonl"
MODEL = "m"
SEED = 1234  # TemplateAPI's seed default


def build_task(name: str, description: str | None = None):
    """The packaged MMLU subtask `name`, its data read from the local jsonl."""
    tm = TaskManager()
    entry = tm._entry(name)
    assert entry is not None and entry.yaml_path is not None, name
    overrides = {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(DOCS), "dev": str(DOCS)}},
    }
    if description is not None:
        overrides["description"] = description
    # The packaged yaml lists `acc` alone; lm-eval computes `acc_norm` too when the metric
    # list names it (the override a user of lm-eval writes to see it).
    overrides["metric_list"] = [
        {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
    ]
    return tm._factory.build(entry, overrides=overrides, registry=tm._index)


def payload(prompt: str) -> dict:
    """lm-eval's request body for one loglikelihood request sent as text."""
    model = types.SimpleNamespace(model=MODEL, tokenized_requests=False, _batch_size=1)
    message = TemplateAPI.create_message(model, [prompt], generate=False)
    assert message == prompt, message
    return LocalCompletionsAPI._create_payload(model, message, generate=False, seed=SEED)


def parse(response: dict, ctxlen: int) -> list:
    [(ll, greedy)] = LocalCompletionsAPI.parse_logprobs(
        outputs=response, tokens=None, ctxlens=[ctxlen]
    )
    return [float(ll), bool(greedy)]


def scores(task, doc, results) -> tuple[float, float]:
    out = task.process_results(doc, [tuple(r) for r in results])
    return float(out["acc"]), float(out["acc_norm"])


def main() -> None:
    tasks = {
        "anatomy": build_task("mmlu_anatomy"),
        "high_school_biology": build_task("mmlu_high_school_biology"),
        None: build_task("mmlu_anatomy", description=""),
    }
    docs = [json.loads(line) for line in DOCS.read_text().splitlines() if line.strip()]
    recorded = json.loads((FIXTURES / "loglik_recorded.json").read_text())["cases"]
    hand_made = json.loads((FIXTURES / "loglik_hand_made.json").read_text())["cases"]
    out = []
    for case in recorded:
        doc = docs[case["doc_index"]]
        task = tasks[doc.get("subject")]
        ctx = task.fewshot_context(doc, 0)
        instances = task.construct_requests(doc, ctx, metadata=("mmlu", case["doc_index"], 1))
        arguments = [list(i.arguments) for i in instances]
        assert [c for _, c in arguments] == [
            case["target_delimiter"] + c for c in case["choices"]
        ], arguments
        results = [parse(r, n) for r, n in zip(case["responses"], case["ctxlens"], strict=True)]
        acc, acc_norm = scores(task, doc, results)
        out.append(
            {
                "id": case["id"],
                "context": ctx,
                "arguments": arguments,
                "payloads": [payload(c + k) for c, k in arguments],
                "results": results,
                "acc": acc,
                "acc_norm": acc_norm,
            }
        )
    base = tasks[None]
    for case in hand_made:
        choices = case["choices"]
        gold = case["gold"]
        task = base
        # The same task object, its choices and target the case's.
        task.doc_to_choice = lambda doc, *a, _c=choices, **k: _c
        task.doc_to_target = lambda doc, *a, _g=gold, **k: _g
        results = [parse(r, n) for r, n in zip(case["responses"], case["ctxlens"], strict=True)]
        acc, acc_norm = scores(task, {}, results)
        out.append(
            {
                "id": case["id"],
                "payloads": [
                    payload(case["context"] + case["target_delimiter"] + c) for c in choices
                ],
                "results": results,
                "acc": acc,
                "acc_norm": acc_norm,
            }
        )
    (FIXTURES / "loglik_parity.json").write_text(json.dumps({"cases": out}, indent=1) + "\n")
    print(f"wrote {len(out)} cases to tests/fixtures/loglik_parity.json")


if __name__ == "__main__":
    main()
