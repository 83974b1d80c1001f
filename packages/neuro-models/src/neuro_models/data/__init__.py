"""Corpora, tokenizers, token shards and the shared data order (see ``docs/guides/harness.rst``)."""

from neuro_models.data.fetch import download
from neuro_models.data.prepare import PreparedData, prepare_data
from neuro_models.data.registry import CORPORA, Corpus, load_corpus, resolve_data_dir
from neuro_models.data.shards import (
    DataOrder,
    Shard,
    load_shard,
    split_documents,
    tokenize_to_shard,
)
from neuro_models.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    train_bpe_tokenizer,
)

__all__ = [
    "CORPORA",
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "Corpus",
    "DataOrder",
    "PreparedData",
    "Shard",
    "Tokenizer",
    "download",
    "load_corpus",
    "load_shard",
    "load_tokenizer",
    "prepare_data",
    "resolve_data_dir",
    "split_documents",
    "tokenize_to_shard",
    "train_bpe_tokenizer",
]
