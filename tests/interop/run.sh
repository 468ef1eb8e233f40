#!/usr/bin/env bash
# Interop: the smtp-server program driven by real clients nobody here wrote.
#   Python smtplib (plain, STARTTLS, AUTH, SMTPUTF8, 10 MB), swaks (pipelining, STARTTLS,
#   AUTH PLAIN/LOGIN, --body from a file), Postfix's smtp-source (2,000 messages over 20
#   sessions into a Maildir), HAProxy with send-proxy-v2 in front of two servers, swaks
#   against three Blackhole listeners of one process.
# Needs python3, openssl, swaks, smtp-source and haproxy (.ci/run installs them); a missing
# tool skips its part with a message, and under CI=true a skip is a failure (a green CI must
# mean every part ran). Loopback only; every wait is bounded; everything
# started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --locked -p smtp-server --features cli
BIN=$PWD/target/debug/smtp-server
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
passed=0 failed=0 skipped=0
ok() { echo "PASS: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() {
  if [ "${CI:-}" = true ]; then bad "$* (CI=true: every part must run)"; return; fi
  echo "SKIP: $*"; skipped=$((skipped + 1))
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened"; return 1
}
start() { # start NAME PORT ARGS...: runs the program in the background
  local name=$1 port=$2; shift 2
  "$BIN" --listen "127.0.0.1:$port" "$@" > "$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
}
count() { find "$1/new" -type f | wc -l; }

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
TLS=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")

# --- Python smtplib -------------------------------------------------------------------------
command -v python3 >/dev/null || { bad "python3 is needed (free ports, smtplib, crash.py)"; exit 1; }
P=$(free_port)
start smtplib "$P" "${TLS[@]}" --auth user:secret --handler "maildir:$WORK/py" --size 20000000 --hostname mx.test
if timeout 120 python3 smtp-server/tests/interop/smtplib_client.py "$P" "$WORK/cert.pem"; then
  n=$(count "$WORK/py")
  [ "$n" = 4 ] && ok "smtplib: plain, STARTTLS, AUTH PLAIN/LOGIN, SMTPUTF8, 10 MB ($n messages)" || bad "smtplib: $n messages in the Maildir, wanted 4"
else
  bad "smtplib client failed"
fi

# --- swaks ----------------------------------------------------------------------------------
if command -v swaks >/dev/null; then
  P=$(free_port)
  start swaks "$P" "${TLS[@]}" --auth user:secret --auth-required --handler "maildir:$WORK/swaks"
  printf 'Subject: from a file\r\n\r\n.line starting with a dot\r\nend\r\n' > "$WORK/body.txt"
  s=0
  timeout 30 swaks --server 127.0.0.1 --port "$P" --from a@example.com --to b@example.net \
    --pipeline --tls --auth PLAIN --auth-user user --auth-password secret \
    --body "$(cat "$WORK/body.txt")" > "$WORK/swaks1.log" 2>&1 || s=1
  timeout 30 swaks --server 127.0.0.1 --port "$P" --from a@example.com --to b@example.net \
    --tls --auth LOGIN --auth-user user --auth-password secret --body @"$WORK/body.txt" \
    > "$WORK/swaks2.log" 2>&1 || s=1
  # Wrong password: must fail.
  if timeout 30 swaks --server 127.0.0.1 --port "$P" --from a@example.com --to b@example.net \
    --tls --auth PLAIN --auth-user user --auth-password wrong > "$WORK/swaks3.log" 2>&1; then s=1; fi
  n=$(count "$WORK/swaks")
  if [ "$s" = 0 ] && [ "$n" = 2 ] && grep -q '^\.line starting with a dot' "$WORK"/swaks/new/*; then
    ok "swaks: pipelining, STARTTLS, AUTH PLAIN and LOGIN, body from a file"
  else
    bad "swaks (status $s, $n messages)"; for f in "$WORK"/swaks*.log; do tail -n 20 "$f"; done
  fi
else
  skip "swaks not installed"
fi

# --- swaks against Blackhole profiles: three listeners in one process ----------------------
if command -v swaks >/dev/null; then
  A=$(free_port); B=$(free_port); T=$(free_port)
  "$BIN" --handler accept --listen "127.0.0.1:$A" --listen "127.0.0.1:$B,mode=bounce,delay=1" \
    --listen "127.0.0.1:$T,mode=tempfail,code=452" > "$WORK/blackhole.log" 2>&1 &
  PIDS+=($!)
  wait_port "$A"; wait_port "$B"; wait_port "$T"
  send() { # send PORT LOG [swaks args]: swaks's exit status
    local port=$1 log=$2; shift 2
    timeout 30 swaks --server 127.0.0.1 --port "$port" --from a@example.com --to b@example.net \
      "$@" > "$WORK/$log" 2>&1 && echo 0 || echo $?
  }
  s1=$(send "$A" bh1.log)
  t0=$(date +%s%N); s2=$(send "$B" bh2.log); t1=$(date +%s%N)
  s3=$(send "$T" bh3.log)
  s4=$(send "$A" bh4.log --add-header "X-Blackhole-Mode: bounce")
  took=$(( (t1 - t0) / 1000000 ))
  if [ "$s1" = 0 ] && [ "$s2" != 0 ] && grep -q '<\*\* *550' "$WORK/bh2.log" && [ "$took" -ge 1000 ] \
    && [ "$s3" != 0 ] && grep -q '<\*\* *452' "$WORK/bh3.log" \
    && [ "$s4" != 0 ] && grep -q '<\*\* *550' "$WORK/bh4.log"; then
    ok "swaks + Blackhole profiles: accept, bounce after ${took} ms, tempfail 452, header switch"
  else
    bad "Blackhole profiles (status $s1 $s2 $s3 $s4, bounce took ${took} ms)"
    for f in "$WORK"/bh*.log; do tail -n 8 "$f"; done
  fi
else
  skip "swaks not installed"
fi

# --- Postfix smtp-source: 2,000 messages over 20 sessions -----------------------------------
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
if [ -x "$SOURCE" ]; then
  P=$(free_port)
  start source "$P" --handler "maildir:$WORK/source" --max-connections 100
  if timeout 300 "$SOURCE" -s 20 -m 2000 -l 2048 -f sender@example.com -t rcpt@example.net "127.0.0.1:$P"; then
    n=$(count "$WORK/source")
    left=$(find "$WORK/source/tmp" -type f | wc -l)
    # Byte-exact: after our Return-Path and 3-line Received header, each message is
    # smtp-source's From, To, Date, Message-Id (the last two differ per message) and a body
    # that is the same bytes in every message, stored with LF line endings (no CR anywhere).
    distinct=$(for f in "$WORK"/source/new/*; do
      { sed -n '5,6p' "$f"; sed -n '7p' "$f" | cut -c1-5; sed -n '8p' "$f" | cut -c1-11; tail -n +9 "$f"; } | md5sum
    done | sort -u | wc -l)
    cr=$(grep -l $'\r' "$WORK"/source/new/* 2>/dev/null | head -1 || true)
    if [ "$n" = 2000 ] && [ "$left" = 0 ] && [ "$distinct" = 1 ] && [ -z "$cr" ]; then
      ok "smtp-source: 2000 messages over 20 sessions, all in new/, identical, LF"
    else
      bad "smtp-source: $n in new/, $left in tmp/, $distinct distinct bodies, CR in ${cr:-none}"
    fi
  else
    bad "smtp-source failed"
  fi
else
  skip "smtp-source not installed (Debian package postfix)"
fi

# --- HAProxy with PROXY v2 in front of two servers ------------------------------------------
if command -v haproxy >/dev/null; then
  B1=$(free_port); B2=$(free_port); F=$(free_port)
  start backend1 "$B1" --proxy-protocol --handler "maildir:$WORK/b1" --hostname b1.test
  start backend2 "$B2" --proxy-protocol --handler "maildir:$WORK/b2" --hostname b2.test
  cat > "$WORK/haproxy.cfg" <<CFG
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend smtp
  bind 127.0.0.1:$F
  default_backend servers
backend servers
  balance roundrobin
  server s1 127.0.0.1:$B1 send-proxy-v2
  server s2 127.0.0.1:$B2 send-proxy-v2
CFG
  haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 &
  PIDS+=($!)
  wait_port "$F"
  # The client connects from 127.0.0.2, so the original address differs from HAProxy's.
  if timeout 60 python3 - "$F" <<'PY'
import smtplib, sys
for i in range(10):
    with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20, source_address=("127.0.0.2", 0)) as s:
        s.sendmail("a@example.com", ["b@example.net"], f"Subject: via haproxy {i}\r\n\r\nx\r\n".encode())
PY
  then
    n1=$(count "$WORK/b1"); n2=$(count "$WORK/b2")
    via=$(grep -l 'from .* (\[127.0.0.2\])' "$WORK"/b1/new/* "$WORK"/b2/new/* | wc -l)
    if [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ $((n1 + n2)) = 10 ] && [ "$via" = 10 ]; then
      ok "haproxy send-proxy-v2: $n1 + $n2 messages, original address 127.0.0.2 in every Received header"
    else
      bad "haproxy: backends got $n1 and $n2, $via with the original address"; head -5 "$WORK"/b1/new/* || true
    fi
  else
    bad "sending through haproxy failed"; cat "$WORK/haproxy.log"
  fi
else
  skip "haproxy not installed"
fi

# --- Crash safety: SIGKILL and SIGTERM under load, Maildir ----------------------------------
if timeout 300 python3 tests/interop/crash.py "$BIN" "$WORK"; then
  ok "crash safety: SIGKILL x3 and SIGTERM under load lose no acknowledged message, leave nothing partial in new/"
else
  bad "crash safety"
fi

echo "interop: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
