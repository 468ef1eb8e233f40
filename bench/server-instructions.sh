#!/usr/bin/env bash
# Instructions the server executes under a fixed client load (callgrind): a measure of server
# CPU per message that does not depend on the machine's load, for comparing two builds.
#
#   bash bench/server-instructions.sh BINARY loadgen|source MESSAGES
#
# BINARY is a release `smtp-server` (built with --features cli); the client is our pipelining
# loadgen (target/release/loadtest) or Postfix's smtp-source, 20 sessions, 1 KB messages.
set -euo pipefail
BIN=$1 CLIENT=$2 N=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$BIN" --listen "127.0.0.1:$P" \
  --handler sink --workers 1 > "$OUT/vg.log" 2>&1 &
VG=$!
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null && break; sleep 0.1; done
case $CLIENT in
  loadgen) "$ROOT/target/release/loadtest" throughput "127.0.0.1:$P" 20 "$N" 1024 > /dev/null ;;
  source) "$(command -v smtp-source || echo /usr/sbin/smtp-source)" -s 20 -m "$N" -l 1024 \
            -f a@example.com -t b@example.net "127.0.0.1:$P" ;;
esac
kill -INT "$VG"; wait "$VG" || true
grep -E "I +refs" "$OUT/vg.log" | tail -1 | sed 's/.*refs: *//'
