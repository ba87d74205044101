#!/usr/bin/env bash
# `make test-compose`: the compose stack built and run for real (tests/compose/test_stack.py).
#   1. a Docker engine: Debian's docker.io, started here if none runs (stopped again at the end);
#   2. base images: the real ones when they can be pulled, else the test fixtures'
#      stand-ins (tests/compose/fixtures/base-images.sh), kept between runs;
#   3. the image, built with the project's Dockerfile; the torch wheel comes from TORCH_INDEX,
#      or from a local index over /opt/wheels when that folder holds the CPU wheel;
#   4. pytest -m compose, which brings the stack up with the README's commands.
# Usage: tests/compose/run.sh PYTHON [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:?usage: run.sh PYTHON [pytest args]}
shift

export HONE_IMAGE_TAG=${HONE_IMAGE_TAG:-compose-test}
# The legacy builder, here and for compose's own builds: BuildKit wants buildx and its
# frontend image, and one builder means one layer cache for both.
export DOCKER_BUILDKIT=0
INDEX_PID=
cleanup() {
  local code=$?
  [ -n "$INDEX_PID" ] && kill "$INDEX_PID" 2>/dev/null
  tests/compose/engine.sh stop || true
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS
tests/compose/engine.sh start
tests/compose/fixtures/base-images.sh >/dev/null
echo "test-compose: engine and base images ready after $((SECONDS - started)) s" >&2

WHEEL=$(ls /opt/wheels/torch-*+cpu-cp311-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "${TORCH_INDEX:-}" ] && [ -n "$WHEEL" ]; then
  # A fixed port when it is free: TORCH_INDEX is part of the layer cache's key, so the same
  # URL on every run lets a warm run reuse the torch layer.
  PORT=$("$PYTHON" -c '
import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 38765))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
  "$PYTHON" tests/compose/torch_index.py --port "$PORT" --wheels "$(dirname "$WHEEL")" &
  INDEX_PID=$!
  for _ in $(seq 50); do
    "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/simple/torch/')" 2>/dev/null && break
    sleep 0.2
  done
  export TORCH_INDEX=http://127.0.0.1:$PORT/simple
fi
export TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

# Built with the host's network, so a local index on 127.0.0.1 answers (pip trusts plain
# HTTP on loopback only). `docker compose up --build` in the test then finds every layer
# in the cache.
echo "test-compose: building hone:$HONE_IMAGE_TAG (torch from $TORCH_INDEX)" >&2
docker build -q --network host --build-arg "TORCH_INDEX=$TORCH_INDEX" \
  -t "hone:$HONE_IMAGE_TAG" . >/dev/null
echo "test-compose: image built after $((SECONDS - started)) s" >&2

"$PYTHON" -m pytest -m compose tests/compose -p no:cacheprovider -v --durations=10 "$@"
echo "test-compose: done in $((SECONDS - started)) s" >&2
