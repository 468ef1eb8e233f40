#!/usr/bin/env bash
# HTTP side of the capture server, end to end, as CI runs it from the repository root:
#
#   cargo build -p smtp-server --features cli
#   bash tests/http/run.sh
#
# Starts target/debug/smtp-server (or $SMTP_SERVER_BIN) with the capture handler on free ports,
# then:
#   1. npm ci --prefix tests/http, and node tests/http/mailpit-api.mjs (Mailpit's npm client);
#   2. with curl: the wait endpoint, the event stream, the faults endpoint, /metrics
#      (and promtool check metrics, if promtool is installed);
#   3. node tests/http/browser.mjs, if /usr/bin/chromium exists or CI=true.
# SMTP from this script goes through swaks if installed, else python3's smtplib
# (SMTP_TOOL=python3 forces the latter).
#
# Under CI=true a missing tool (node, npm, curl, swaks/python3, chromium) is a failure; elsewhere
# its checks are skipped with a message. Prints one line per check, then
# "http: N passed, N failed, N skipped"; exits non-zero on any failure. Every wait is bounded;
# everything started here is ended on exit.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1

BIN=${SMTP_SERVER_BIN:-target/debug/smtp-server}
IN_CI=0
[[ ${CI:-} == true ]] && IN_CI=1
NODE_SENT=4 # messages that mailpit-api.mjs sends and has accepted, for the metrics check

WORK=$(mktemp -d "${TMPDIR:-/tmp}/http-tests.XXXXXX")
PIDS=()
SERVER_PID=

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    # Up to 5 s each to go; then KILL.
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

PASS=0
FAIL=0
SKIP=0
pass() { echo "ok - $*"; PASS=$((PASS + 1)); }
fail() { echo "not ok - $*"; FAIL=$((FAIL + 1)); }
skip() { echo "ok - # SKIP $*"; SKIP=$((SKIP + 1)); }
check() { # NAME CONDITION-COMMAND...
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }
# A tool that is not there: a failure under CI=true, else a skip.
missing() { # TOOL WHAT
  if ((IN_CI)); then fail "$2: $1 is not installed (required under CI=true)"; else skip "$2: $1 is not installed"; fi
}
summary() {
  echo "http: $PASS passed, $FAIL failed, $SKIP skipped"
  ((FAIL == 0))
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

TAG=$(date +%s)$$

# ------------------------------------------------------------------------------------------------
# The server.

if [[ ! -x $BIN ]]; then
  fail "server binary $BIN exists (build it: cargo build -p smtp-server --features cli)"
  summary
  exit 1
fi
"$BIN" --listen 127.0.0.1:0 --handler capture --http 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
SMTP_PORT=
BASE=
for _ in $(seq 100); do # 10 s
  SMTP_PORT=$(sed -n 's/^smtp-server: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$WORK/server.err" | head -n1)
  BASE=$(sed -n 's|^smtp-server: http on \(http://[^ ]*\).*|\1|p' "$WORK/server.err" | head -n1)
  [[ -n $SMTP_PORT && -n $BASE ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
BASE=${BASE%/}
if [[ -z $SMTP_PORT || -z $BASE ]]; then
  fail "server started and printed its SMTP and HTTP addresses within 10 s"
  sed 's/^/# server: /' "$WORK/server.err"
  summary
  exit 1
fi
pass "server started: SMTP 127.0.0.1:$SMTP_PORT, HTTP $BASE"

# ------------------------------------------------------------------------------------------------
# SMTP from the shell: swaks, else python3's smtplib.

SMTP_TOOL=${SMTP_TOOL:-}
if [[ -z $SMTP_TOOL ]]; then
  if have swaks; then SMTP_TOOL=swaks; elif have python3; then SMTP_TOOL=python3; else SMTP_TOOL=none; fi
fi
SENT=0 # messages this script had accepted

# send_mail SUBJECT [RCPT]: one message; returns non-zero unless it was accepted.
send_mail() {
  local subject=$1 rcpt=${2:-shell@rcpt.example}
  case $SMTP_TOOL in
    swaks)
      timeout 20 swaks --server 127.0.0.1 --port "$SMTP_PORT" --timeout 10 \
        --from shell@sender.example --to "$rcpt" --header "Subject: $subject" \
        --body "Sent by run.sh: $subject" >>"$WORK/swaks.log" 2>&1
      ;;
    python3)
      timeout 20 python3 - "$SMTP_PORT" "$subject" "$rcpt" >>"$WORK/smtplib.log" 2>&1 <<'PY'
import smtplib, sys
port, subject, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = (f"From: shell@sender.example\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n"
       f"Sent by run.sh: {subject}\r\n").encode()
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    refused = s.sendmail("shell@sender.example", [rcpt], msg)
    sys.exit(1 if refused else 0)
PY
      ;;
    *) return 1 ;;
  esac
}

# rcpt_code RCPT: prints the three-digit reply to RCPT TO:<RCPT> (after EHLO and MAIL).
rcpt_code() {
  local rcpt=$1
  case $SMTP_TOOL in
    swaks)
      timeout 20 swaks --server 127.0.0.1 --port "$SMTP_PORT" --timeout 10 \
        --from probe@sender.example --to "$rcpt" --quit-after RCPT 2>&1 |
        awk '/^ -> RCPT TO:/ { r = 1; next } r && /^</ { if (match($0, /[0-9][0-9][0-9]/)) print substr($0, RSTART, 3); exit }'
      ;;
    python3)
      timeout 20 python3 - "$SMTP_PORT" "$rcpt" 2>>"$WORK/smtplib.log" <<'PY'
import smtplib, sys
port, rcpt = int(sys.argv[1]), sys.argv[2]
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.ehlo("probe.test")
    s.mail("probe@sender.example")
    code, _ = s.rcpt(rcpt)
    print(code)
PY
      ;;
  esac
}

# ------------------------------------------------------------------------------------------------
# 1. Mailpit's npm client.

NODE_OK=0
if ! have node; then
  missing node "mailpit-api.mjs"
elif ! have npm; then
  missing npm "npm ci --prefix tests/http"
else
  NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if ((NODE_MAJOR < 18)); then
    fail "node >= 18 for mailpit-api 2.x (found $(node --version))"
  elif timeout 600 npm ci --prefix tests/http --no-audit --no-fund >"$WORK/npm.log" 2>&1; then
    pass "npm ci --prefix tests/http"
    NODE_OK=1
  else
    fail "npm ci --prefix tests/http"
    tail -n 20 "$WORK/npm.log" | sed 's/^/# npm: /'
  fi
fi
if ((NODE_OK)); then
  echo "# node tests/http/mailpit-api.mjs $BASE $SMTP_PORT"
  timeout 150 node tests/http/mailpit-api.mjs "$BASE" "$SMTP_PORT" 2>&1 | sed 's/^/    /'
  rc=${PIPESTATUS[0]}
  if ((rc == 0)); then pass "mailpit-api.mjs (Mailpit's npm client)"; else fail "mailpit-api.mjs (Mailpit's npm client) exited $rc"; fi
else
  NODE_SENT=0
fi

# ------------------------------------------------------------------------------------------------
# 2. Our own endpoints, with curl.

if ! have curl; then
  missing curl "wait, events, faults and metrics checks"
else
  # http_code METHOD URL [curl args...]: prints "CODE SECONDS", the body in $WORK/body.
  http() {
    local method=$1 url=$2
    shift 2
    curl -sS -o "$WORK/body" -w '%{http_code} %{time_total}' --max-time 20 -X "$method" "$@" "$url" 2>>"$WORK/curl.log" ||
      echo "000 0"
  }
  read -r code _ < <(http DELETE "$BASE/api/v1/messages")
  check "DELETE /api/v1/messages: 200 (empty mailbox to start)" [ "$code" = 200 ]
  if [[ $SMTP_TOOL == none ]]; then
    missing "swaks or python3" "SMTP from the shell (wait, events, faults)"
  else
    [[ $SMTP_TOOL == python3 ]] && echo "# SMTP from the shell through python3 smtplib"
    [[ $SMTP_TOOL == swaks ]] && echo "# SMTP from the shell through swaks"

    # --- The wait endpoint.
    LATE="late arrival $TAG"
    (sleep 1 && send_mail "$LATE") &
    SENDER=$!
    PIDS+=("$SENDER")
    read -r code secs < <(http GET "$BASE/api/v1/wait?query=subject:late&timeout=10")
    if wait "$SENDER"; then SENT=$((SENT + 1)); else fail "SMTP: the late message accepted"; fi
    check "wait?query=subject:late&timeout=10: 200 once the message sent after 1 s arrives (got $code)" [ "$code" = 200 ]
    check "wait: the answer holds the subject" grep -qF "\"Subject\":\"$LATE\"" "$WORK/body"
    check "wait: the answer is a MessagesSummary with messages_count 1" grep -qF '"messages_count":1' "$WORK/body"
    check "wait: it did wait for the message (${secs}s >= 0.8s)" ge "$secs" 0.8

    read -r code secs < <(http GET "$BASE/api/v1/wait?query=subject:never-$TAG&timeout=0.5")
    check "wait?timeout=0.5 with no match: 408 (got $code)" [ "$code" = 408 ]
    check "wait: gave up after about 0.5 s (${secs}s)" bash -c "awk -v s=$secs 'BEGIN { exit !(s >= 0.4 && s < 5) }'"
    check "wait: the 408 answer is JSON with messages_count 0" grep -qF '"messages_count":0' "$WORK/body"

    read -r code _ < <(http GET "$BASE/api/v1/wait?query=subject:late&count=2&timeout=0.5")
    check "wait?count=2 with one match: 408 (got $code)" [ "$code" = 408 ]
    check "wait: the 408 answer holds what did match" grep -qF "\"Subject\":\"$LATE\"" "$WORK/body"

    read -r code _ < <(http GET "$BASE/api/v1/wait?query=subject:late&count=1&timeout=0")
    check "wait?count=1&timeout=0 with a match already there: 200 (got $code)" [ "$code" = 200 ]

    # --- The event stream.
    curl -sS -N --max-time 8 -D "$WORK/events.headers" "$BASE/api/v1/events" >"$WORK/events" 2>>"$WORK/curl.log" &
    EVENTS=$!
    PIDS+=("$EVENTS")
    for _ in $(seq 50); do [[ -s $WORK/events.headers ]] && break; sleep 0.1; done # up to 5 s
    check "events: the stream answers 200" grep -q '^HTTP/[0-9.]* 200' "$WORK/events.headers"
    check "events: Content-Type text/event-stream" grep -qi '^content-type: *text/event-stream' "$WORK/events.headers"
    EVSUBJ="event stream $TAG"
    if send_mail "$EVSUBJ"; then SENT=$((SENT + 1)); else fail "SMTP: the event-stream message accepted"; fi
    for _ in $(seq 50); do grep -qF "$EVSUBJ" "$WORK/events" && break; sleep 0.1; done
    check "events: an 'event: new' arrives" grep -q '^event: new' "$WORK/events"
    check "events: its data is the message summary, with the subject" grep -qF "\"Subject\":\"$EVSUBJ\"" "$WORK/events"
    EVID=$(grep -F "\"Subject\":\"$EVSUBJ\"" "$WORK/events" | sed -n 's/^data: {"ID":"\([^"]*\)".*/\1/p' | head -n1)
    check "events: the data line starts with the ID" [ -n "$EVID" ]
    if [[ -n $EVID ]]; then
      read -r code _ < <(http DELETE "$BASE/api/v1/messages" -H 'Content-Type: application/json' -d "{\"IDs\":[\"$EVID\"]}")
      for _ in $(seq 30); do grep -q '^event: delete' "$WORK/events" && break; sleep 0.1; done
      check "events: deleting it by ID gives 'event: delete' with its ID" \
        bash -c "grep -A1 '^event: delete' '$WORK/events' | grep -qF '\"ID\":\"$EVID\"'"
    fi
    read -r code _ < <(http DELETE "$BASE/api/v1/messages")
    for _ in $(seq 30); do grep -q '^event: truncate' "$WORK/events" && break; sleep 0.1; done
    check "events: deleting all gives 'event: truncate'" grep -q '^event: truncate' "$WORK/events"
    kill "$EVENTS" 2>/dev/null
    wait "$EVENTS" 2>/dev/null

    # --- The faults endpoint.
    read -r code _ < <(http PUT "$BASE/api/v1/faults" -H 'Content-Type: application/json' -d '{"reject_recipients":["*@bad.example"]}')
    check "faults: PUT reject_recipients: 200 (got $code)" [ "$code" = 200 ]
    read -r code _ < <(http GET "$BASE/api/v1/faults")
    check "faults: GET shows the rule" bash -c "[ $code = 200 ] && grep -qF '\"reject_recipients\":[\"*@bad.example\"]' '$WORK/body'"
    c=$(rcpt_code "someone@bad.example")
    check "faults: RCPT to a matching address gets 550 (got ${c:-nothing})" [ "$c" = 550 ]
    c=$(rcpt_code "someone@good.example")
    check "faults: RCPT to another address gets 250 (got ${c:-nothing})" [ "$c" = 250 ]
    read -r code _ < <(http PUT "$BASE/api/v1/faults" -H 'Content-Type: application/json' -d '{"reject_recipients":')
    check "faults: PUT with a broken body: 400 (got $code)" [ "$code" = 400 ]
    c=$(rcpt_code "someone@bad.example")
    check "faults: a refused PUT leaves the rule in place (got ${c:-nothing})" [ "$c" = 550 ]
    read -r code _ < <(http DELETE "$BASE/api/v1/faults")
    check "faults: DELETE: 200 (got $code)" [ "$code" = 200 ]
    read -r code _ < <(http GET "$BASE/api/v1/faults")
    check "faults: GET after DELETE shows no rule" bash -c "[ $code = 200 ] && grep -qF '\"reject_recipients\":[]' '$WORK/body'"
    c=$(rcpt_code "someone@bad.example")
    check "faults: after DELETE, RCPT to that address gets 250 (got ${c:-nothing})" [ "$c" = 250 ]
  fi

  # --- /metrics.
  # OpenMetrics when asked for (Prometheus asks), Prometheus text 0.0.4 otherwise.
  read -r code _ < <(http GET "$BASE/metrics" -D "$WORK/metrics.headers" -H 'Accept: application/openmetrics-text; version=1.0.0')
  cp "$WORK/body" "$WORK/metrics"
  check "metrics: 200 (got $code)" [ "$code" = 200 ]
  check "metrics: Content-Type application/openmetrics-text" grep -qi '^content-type: *application/openmetrics-text' "$WORK/metrics.headers"
  WANT=$((NODE_SENT + SENT))
  got=$(awk '$1 == "smtp_messages_total{outcome=\"accepted\"}" { print $2 }' "$WORK/metrics")
  check "metrics: smtp_messages_total{outcome=\"accepted\"} ${got:-absent} >= $WANT messages sent" bash -c "[ -n '$got' ] && awk -v g='$got' -v w=$WANT 'BEGIN { exit !(g + 0 >= w) }'"
  check "metrics: '# EOF' is the last line" [ "$(tail -n1 "$WORK/metrics")" = "# EOF" ]
  check "metrics: '# EOF' only once" [ "$(grep -c '^# EOF' "$WORK/metrics")" = 1 ]
  read -r code _ < <(http GET "$BASE/metrics" -D "$WORK/metrics-text.headers")
  check "metrics: without Accept, Content-Type text/plain; version=0.0.4" grep -qi '^content-type: *text/plain; version=0.0.4' "$WORK/metrics-text.headers"
  check "metrics: text format names counters' TYPE with _total" grep -q '^# TYPE smtp_messages_total counter' "$WORK/body"
  if have promtool; then
    # promtool lints the Prometheus text format (0.0.4): ask for that one.
    read -r code _ < <(http GET "$BASE/metrics" -H 'Accept: text/plain;version=0.0.4')
    if timeout 20 promtool check metrics <"$WORK/body" >"$WORK/promtool.log" 2>&1; then
      pass "metrics: promtool check metrics"
    else
      fail "metrics: promtool check metrics (Accept: text/plain;version=0.0.4)"
      head -n 20 "$WORK/promtool.log" | sed 's/^/# promtool: /'
    fi
  else
    skip "metrics: promtool check metrics: promtool is not installed (optional)"
  fi
fi

# ------------------------------------------------------------------------------------------------
# 3. The browser test (tests/http/browser.mjs, written separately).

if [[ -x /usr/bin/chromium || $IN_CI == 1 ]]; then
  if [[ ! -f tests/http/browser.mjs ]]; then
    skip "browser.mjs: tests/http/browser.mjs does not exist yet"
  elif [[ ! -x /usr/bin/chromium && -z ${CHROMIUM:-} ]]; then
    missing chromium "browser.mjs"
  elif ((!NODE_OK)); then
    if have node && have npm; then fail "browser.mjs: needs the npm dependencies (npm ci failed)"; else missing node "browser.mjs"; fi
  else
    have curl && curl -sS -o /dev/null --max-time 10 -X DELETE "$BASE/api/v1/messages" 2>>"$WORK/curl.log"
    echo "# node tests/http/browser.mjs $BASE $SMTP_PORT"
    timeout 180 node tests/http/browser.mjs "$BASE" "$SMTP_PORT" 2>&1 | sed 's/^/    /'
    rc=${PIPESTATUS[0]}
    if ((rc == 0)); then pass "browser.mjs (the web page in Chromium)"; else fail "browser.mjs (the web page in Chromium) exited $rc"; fi
  fi
else
  skip "browser.mjs: no /usr/bin/chromium (and not CI)"
fi

# ------------------------------------------------------------------------------------------------

if kill -0 "$SERVER_PID" 2>/dev/null; then
  pass "server still running at the end"
else
  wait "$SERVER_PID"
  fail "server still running at the end (it exited with $?)"
  tail -n 20 "$WORK/server.err" | sed 's/^/# server: /'
fi
summary
