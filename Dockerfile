# hone's image: the API, the workers, the dashboard and migrations are all `hone …` commands.
#
#   docker build -t hone .                                                    # CUDA torch
#   docker build -t hone --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .
#
# Every Python package comes from constraints.txt (exact versions); torch is installed first,
# by exact version, from the index that picks its build (CUDA or CPU).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The torch pin of constraints.txt (tests/unit/test_dockerfile.py keeps the two equal); an ARG
# rather than read from that file, so a change to another pin does not download torch again.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/hone
ENV PATH=/opt/hone/bin:$PATH
WORKDIR /src
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml constraints.txt README.md ./
COPY hone ./hone
COPY service ./service
COPY worker ./worker
COPY trainer ./trainer
COPY migrations ./migrations
COPY protocol ./protocol
RUN pip install -c constraints.txt . \
 && python -c "import hone.cli, hone.commands.study, protocol, service.spec, worker.loop, trainer.config"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/hone/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/hone
RUN groupadd --system --gid 10001 hone \
 && useradd --system --uid 10001 --gid hone --home-dir /home/hone --create-home hone
COPY --from=build /opt/hone /opt/hone
WORKDIR /app
COPY --chown=root:root examples ./examples
USER hone
EXPOSE 8000 8080
# The default command is the API; docker-compose.yml gives the other services their own checks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, httpx; sys.exit(httpx.get('http://127.0.0.1:8000/readyz', timeout=2).status_code != 200)"]
CMD ["hone", "api", "--host", "0.0.0.0", "--port", "8000"]
