"""lm-evaluation-harness as a real client of the gateway: GSM8K through `signoria/<pipeline>`
and through the raw expert id, with `local-chat-completions` unchanged.

What it shows: a served pipeline passes the client's messages as sent and honours the
client's `max_tokens` (lm-eval asks `max_gen_toks`), so the pipeline and its own expert
called by id give the same answers, and no answer is cut short of what the client asked.

Steps, all on this machine: lm-eval is installed into its own venv (default
~/.cache/signoria/lm-eval-venv, never the project's), a few GSM8K questions are cut from
../shared/data into a JSONL beside a local task YAML (`dataset_path: json`, no hub), and
`signoria serve` runs on 127.0.0.1 recording to a fresh SQLite file. lm-eval reports the
accuracy; the server's records give each answer's finish reason (the truncation share).

    .venv/bin/python -m benchmarks.lm_eval_client --limit 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.overhead import free_port, process, signoria_argv

ROOT = Path(__file__).resolve().parent.parent
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
# The `api` extra brings what `local-chat-completions` needs (tenacity, aiohttp, ...).
LM_EVAL = "lm-eval[api]==0.4.13"
VENV = Path.home() / ".cache" / "signoria" / "lm-eval-venv"
TASK = "signoria_gsm8k_local"

# lm-eval's zero-shot chain-of-thought GSM8K prompt, scored by its flexible extract (the
# last number of the answer); the data comes from a local JSONL instead of the hub.
TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
doc_to_text: "Q: {{{{question}}}}\\nA: Let's think step by step."
doc_to_target: "{{{{answer.split('#### ')[-1]}}}}"
generation_kwargs:
  until: ["Q:"]
  do_sample: false
  temperature: 0.0
  max_gen_toks: {max_gen_toks}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    regexes_to_ignore: [",", "\\\\$", "\\\\.$"]
filter_list:
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: take_first
metadata:
  version: 1.0
"""


def ensure_lm_eval(venv: Path) -> Path:
    """The venv's `lm-eval` executable, installing it (from the package index) on first
    use. The project's own venv is never touched: lm-eval pins its own dependencies."""
    exe, python = venv / "bin" / "lm-eval", venv / "bin" / "python"
    ready = [str(python), "-c", "import lm_eval, tenacity, aiohttp"]
    if exe.exists() and subprocess.run(ready, capture_output=True).returncode == 0:
        return exe
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LM_EVAL], check=True)
    return exe


def cut_gsm8k(source: Path, limit: int, out: Path) -> None:
    """The first `limit` rows of the GSM8K file, as the task's local test split."""
    with source.open() as rows, out.open("w") as cut:
        for n, line in enumerate(rows):
            if n >= limit:
                break
            row = json.loads(line)
            cut.write(json.dumps({"question": row["question"], "answer": row["answer"]}) + "\n")


def run_lm_eval(exe: Path, url: str, model: str, tasks: Path, out: Path) -> float:
    """lm-eval's flexible-extract exact match for `model`, as lm-eval itself reports it."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OPENAI_API_KEY": "unused-keyless-loopback",
    }
    argv = [
        str(exe),
        "run",
        "--model",
        "local-chat-completions",
        "--model_args",
        f"model={model},base_url={url}/v1/chat/completions,num_concurrent=1,"
        "max_retries=1,tokenized_requests=False,timeout=3600",
        "--tasks",
        TASK,
        "--include_path",
        str(tasks),
        "--apply_chat_template",
        "--output_path",
        str(out),
    ]
    subprocess.run(argv, check=True, env=env, cwd=out.parent)
    [results] = sorted(out.rglob("results_*.json"))
    metrics = json.loads(results.read_text())["results"][TASK]
    return float(metrics["exact_match,flexible-extract"])


def served_answers(db: Path) -> dict[str, dict[str, Any]]:
    """Per model id: answers served and how many were cut at max_tokens, from the
    server's records (each item's finish reason and its calls' max_tokens)."""
    from signoria.orchestrator.storage import Store

    store = Store.open(f"sqlite:///{db}")
    try:
        per: dict[str, dict[str, Any]] = {}
        for run in store.runs(kind="serve"):
            for item in store.items(run.id):
                entry = per.setdefault(item.pipeline or "?", {"answers": 0, "truncated": 0})
                entry["answers"] += item.error is None
                entry["truncated"] += item.finish_reason == "length"
        return per
    finally:
        store.close()


def main(
    config: Path, pipeline: str, expert: str, limit: int, max_gen_toks: int, venv: Path
) -> dict[str, Any]:
    exe = ensure_lm_eval(venv)
    with tempfile.TemporaryDirectory(prefix="signoria-lm-eval-") as tmp:
        work = Path(tmp)
        data, tasks = work / "gsm8k.jsonl", work / "tasks"
        tasks.mkdir()
        cut_gsm8k(GSM8K, limit, data)
        task = TASK_YAML.format(task=TASK, data=data, max_gen_toks=max_gen_toks)
        (tasks / f"{TASK}.yaml").write_text(task)
        port, db = free_port(), work / "served.db"
        serve = signoria_argv(config, port, "--db", f"sqlite:///{db}")
        url = f"http://127.0.0.1:{port}"
        accuracy: dict[str, float] = {}
        with process(serve, f"{url}/health"):
            for model in (f"signoria/{pipeline}", expert):
                out = work / f"out-{model.replace('/', '_')}"
                out.mkdir()
                accuracy[model] = run_lm_eval(exe, url, model, tasks, out)
        served = served_answers(db)
    # The server records a pipeline's requests under the pipeline's name, an expert's
    # under the expert's.
    rows = {}
    for model, acc in accuracy.items():
        record = served.get(model.removeprefix("signoria/"), {"answers": 0, "truncated": 0})
        answers = record["answers"]
        rows[model] = {
            "accuracy": acc,
            "answers": answers,
            "truncated": record["truncated"],
            "truncated_share": record["truncated"] / answers if answers else None,
        }
    return {
        "client": LM_EVAL,
        "task": "gsm8k zero-shot CoT (local JSONL, lm-eval flexible-extract exact match)",
        "questions": limit,
        "max_gen_toks": max_gen_toks,
        "config": str(config),
        "models": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--pipeline", default="single")
    parser.add_argument("--expert", default="qwen2.5-coder-1.5b", help="the pipeline's expert")
    parser.add_argument("--limit", type=int, default=10, help="GSM8K questions")
    parser.add_argument("--max-gen-toks", type=int, default=320, help="lm-eval's max_tokens")
    parser.add_argument("--venv", type=Path, default=VENV, help="where lm-eval is installed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = main(
        args.config, args.pipeline, args.expert, args.limit, args.max_gen_toks, args.venv
    )
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
