"""A trained Router-R1 policy as a self-contained directory.

    manifest.json      what was trained, from what, on what, with which settings
    policy/            the policy as a transformers checkpoint (weights and tokenizer)
    policy.gguf        the same weights for the `llamacpp` backend (when exported)
    descriptors.json   the experts as the policy saw them in training
    train_log.jsonl    one line per GRPO (and warm-up) step: reward and its terms
    pipeline.yaml      the models/pipelines entries that serve it (experts: your own)

Serving it is the `router-r1` pipeline with the policy model's `source: {path: .../policy.gguf}`
and `descriptors: .../descriptors.json`, which `pipeline.yaml` spells out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from signoria.errors import SignoriaError
from signoria.registry import validation_problem

MANIFEST = "manifest.json"
POLICY_DIR = "policy"
POLICY_GGUF = "policy.gguf"
DESCRIPTORS = "descriptors.json"
TRAIN_LOG = "train_log.jsonl"
PIPELINE = "pipeline.yaml"


class ArtifactError(SignoriaError):
    pass


class R1Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["signoria-router-r1/1"] = "signoria-router-r1/1"
    policy: str = Field(description="what training started from")
    gguf: str | None = Field(description="the exported GGUF's file name, if any")
    experts: tuple[str, ...]
    max_rounds: int
    information_limit: int
    cost_weight: float
    # The cost scale of the training questions' calls (sqrt USD at its 5th and 95th
    # percentiles): what evaluation scores every policy's cost on.
    cost_scale: tuple[float, float]
    settings: dict[str, Any]
    seed: int
    trained_on: dict[str, Any]
    seconds: float


def write_artifact(
    out: Path,
    manifest: R1Manifest,
    descriptors_file: Path,
    *,
    policy_name: str = "r1-policy",
) -> None:
    """The manifest and the serving snippet; the weights, GGUF, descriptors and log are
    written into `out` by the training run itself."""
    (out / MANIFEST).write_text(manifest.model_dump_json(indent=1) + "\n")
    checkpoint = str((out / POLICY_DIR).resolve())
    if manifest.gguf is not None:
        served: dict[str, Any] = {
            "backend": "llamacpp",
            "source": {"path": str((out / manifest.gguf).resolve())},
        }
        how = "The policy runs in-process from its GGUF (the llamacpp backend)."
    else:  # a transformers checkpoint only: any OpenAI-compatible server runs it
        served = {"backend": "openai", "base_url": "http://127.0.0.1:8001/v1", "model": checkpoint}
        how = f"Serve the policy first, e.g. `vllm serve {checkpoint} --port 8001`."
    snippet = {
        "models": {
            policy_name: {
                **served,
                "context_length": 4096,
                "input_price": 0.0,
                "output_price": 0.0,
                "description": f"Router-R1 policy trained from {manifest.policy}",
            }
        },
        "pipelines": {
            "router-r1": {
                "description": "Router-R1: the trained policy thinks, asks experts, answers.",
                "router": {"name": "none"},
                "aggregator": {
                    "name": "router-r1",
                    "policy": policy_name,
                    "experts": list(manifest.experts),
                    "max_rounds": manifest.max_rounds,
                    "information_limit": manifest.information_limit,
                    "descriptors": str(descriptors_file.resolve()),
                },
            }
        },
    }
    (out / PIPELINE).write_text(
        f"# Merge into a config whose models include the experts named below. {how}\n"
        + yaml.safe_dump(snippet, sort_keys=False)
    )


def read_manifest(artifact: Path) -> R1Manifest:
    path = artifact / MANIFEST
    try:
        return R1Manifest.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{artifact}: not a Router-R1 artifact (no {MANIFEST})") from None
    except ValidationError as exc:
        where, message = validation_problem(exc)
        raise ArtifactError(f"{path}: {where}: {message}") from None


def read_log(artifact: Path) -> list[dict[str, Any]]:
    path = artifact / TRAIN_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
