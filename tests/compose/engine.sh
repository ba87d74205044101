#!/usr/bin/env bash
# The Docker engine for `make test-compose`: `engine.sh start` installs Debian's docker.io,
# docker-compose and debootstrap when missing and starts dockerd in the background (overlay2,
# no systemd) unless an engine already answers; `engine.sh stop` stops it again, but only
# if `start` started it (the pid file says so), so a developer's own engine is left alone.
set -euo pipefail

STATE_DIR=${HONE_COMPOSE_STATE:-/tmp/hone-test-compose}
PID_FILE=$STATE_DIR/dockerd.pid
LOG_FILE=$STATE_DIR/dockerd.log

need_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if ((${#missing[@]})); then
    echo "engine: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "engine: installing packages needs root (apt-get install ${missing[*]})" >&2
      exit 1
    fi
    # apt-get update can fail on one mirror hiccup; two tries before giving up.
    apt-get update -qq || { sleep 5; apt-get update -qq; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

engine_answers() {
  timeout 10 docker info >/dev/null 2>&1
}

start() {
  need_packages
  if engine_answers; then
    echo "engine: a Docker engine already runs; using it" >&2
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "engine: no Docker engine answers and starting one needs root" >&2
    exit 1
  fi
  mkdir -p "$STATE_DIR"
  # A dockerd that died uncleanly leaves its pid file; dockerd refuses to start over it.
  rm -f /var/run/docker.pid
  echo "engine: starting dockerd (log: $LOG_FILE)" >&2
  setsid dockerd --storage-driver overlay2 --pidfile /var/run/docker.pid >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  for _ in $(seq 60); do
    if engine_answers; then
      echo "engine: dockerd is up" >&2
      return 0
    fi
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      echo "engine: dockerd exited; its log:" >&2
      tail -n 30 "$LOG_FILE" >&2
      rm -f "$PID_FILE"
      exit 1
    fi
    sleep 1
  done
  echo "engine: dockerd did not answer within 60 s; its log:" >&2
  tail -n 30 "$LOG_FILE" >&2
  exit 1
}

stop() {
  [ -f "$PID_FILE" ] || return 0
  local pid
  pid=$(cat "$PID_FILE")
  if kill -0 "$pid" 2>/dev/null; then
    echo "engine: stopping the dockerd this test started (pid $pid)" >&2
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
