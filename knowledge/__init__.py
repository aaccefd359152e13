"""The firm's documents (risk policy, runbooks) and the retrieval index over them."""

from knowledge.encoder import MODEL_NAME, Encoder, MiniLMEncoder, load_encoder
from knowledge.index import Hit, KnowledgeIndex, default_cache_dir
from knowledge.passages import DEFAULT_DOCS_DIR, Passage, fingerprint, load_passages, split_markdown

__all__ = [
    "DEFAULT_DOCS_DIR",
    "MODEL_NAME",
    "Encoder",
    "Hit",
    "KnowledgeIndex",
    "MiniLMEncoder",
    "Passage",
    "default_cache_dir",
    "fingerprint",
    "load_encoder",
    "load_passages",
    "split_markdown",
]
