#!/usr/bin/env bash
# Start/stop a throwaway local OCI registry (Debian's docker-registry = distribution v2.8)
# as a plain background process: no systemd, no auth, storage in a temp dir.
#   registry.sh start [DIR] [ADDR]   -> prints the pid; DIR default /tmp/fruits-registry, ADDR 127.0.0.1:5000
#   registry.sh stop  [DIR]
set -euo pipefail
cmd="${1:-start}"; dir="${2:-/tmp/fruits-registry}"; addr="${3:-127.0.0.1:5000}"
case "$cmd" in
start)
  command -v docker-registry >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null
  mkdir -p "$dir/data"
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
YML
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then cat "$dir/pid"; exit 0; fi
  nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 1 100); do
    curl -fsS --max-time 1 "http://$addr/v2/" >/dev/null 2>&1 && { cat "$dir/pid"; exit 0; }
    sleep 0.1
  done
  echo "registry did not come up; log:" >&2; cat "$dir/registry.log" >&2; exit 1 ;;
stop)
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -f "$dir/pid" ;;
*) echo "usage: $0 start|stop [DIR] [ADDR]" >&2; exit 2 ;;
esac
