"""Crash safety of the Maildir handler under load (run by tests/interop/run.sh).

SIGKILL at random (seeded) moments while 4 clients send: every message that got a 250 is
complete in new/, nothing partial is in new/, and a restarted server serves again. Then SIGTERM
under load: the server exits gracefully, every 250'd message is there, clients mid-DATA get a
421 or complete. Usage: crash.py BINARY WORKDIR
"""
import os, random, signal, smtplib, socket, subprocess, sys, threading, time

binary, work = sys.argv[1], sys.argv[2]
maildir = os.path.join(work, "crash-maildir")
rng = random.Random(20261122)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(port):
    p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--handler", f"maildir:{maildir}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def body(tag):
    # ~64 KB so that kills land mid-DATA too; the last line proves the message is complete.
    return (f"Subject: {tag}\r\n\r\n" + ("y" * 78 + "\r\n") * 800 + f"END-{tag}\r\n").encode()


def client(port, name, acked, codes, drops, stop):
    """One session, sending until stopped. A reply code that ends it goes to `codes`; a
    connection lost without a reply goes to `drops` (expected under SIGKILL, a failure under
    SIGTERM)."""
    n = 0
    told = False
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            while not stop.is_set():
                tag = f"{name}-{n}"; n += 1
                try:
                    s.sendmail("a@example.com", ["b@example.net"], body(tag))
                    acked.append(tag)
                except smtplib.SMTPResponseException as e:
                    codes.append(e.smtp_code); told = True; return
                except smtplib.SMTPRecipientsRefused as e:
                    # The reply to RCPT (smtplib keeps it per recipient), e.g. 421 at shutdown.
                    codes.append(min(code for code, _ in e.recipients.values())); told = True; return
    except smtplib.SMTPResponseException as e:
        # Leaving the `with` sends QUIT; smtplib raises when its reply is not 221. A client
        # already told 421 (smtplib does not close after a 421 to the DATA command itself)
        # may read 421 again there: it was told, not dropped. Seen once in CI (session 5).
        if e.smtp_code == 421 and told:
            return
        if e.smtp_code == 421:
            codes.append(421); return
        drops.append(f"{name}: {type(e).__name__}: {e}")
    except (OSError, smtplib.SMTPException) as e:
        drops.append(f"{name}: {type(e).__name__}: {e}")


def wait_for_acks(acked, n):
    """Load first: a kill before any acknowledgement would prove nothing."""
    deadline = time.monotonic() + 30
    while len(acked) < n:
        assert time.monotonic() < deadline, f"only {len(acked)} messages acknowledged in 30 s"
        time.sleep(0.02)


def check(acked):
    new = os.path.join(maildir, "new")
    contents = [open(os.path.join(new, f), "rb").read() for f in os.listdir(new)]
    # Lines end in LF in the Maildir (the default); splitlines() reads either.
    partial = [c[:80] for c in contents if not c.rstrip().splitlines()[-1].startswith(b"END-")]
    stored = {c.rstrip().splitlines()[-1][4:].decode() for c in contents}
    missing = [t for t in acked if t not in stored]
    assert not partial, f"partial messages in new/: {partial[:3]}"
    assert not missing, f"acknowledged but missing: {missing[:5]}"
    return len(contents)


port = free_port()
total_acked = []
for round_ in range(3):
    server = start(port)
    acked, codes, drops, stop = [], [], [], threading.Event()
    threads = [threading.Thread(target=client, args=(port, f"k{round_}c{i}", acked, codes, drops, stop)) for i in range(4)]
    for t in threads: t.start()
    wait_for_acks(acked, 4)
    time.sleep(rng.uniform(0.0, 1.0))
    server.send_signal(signal.SIGKILL); server.wait(timeout=10)
    stop.set()
    for t in threads: t.join(timeout=20)
    total_acked += acked
    n = check(total_acked)
    print(f"SIGKILL round {round_}: {len(acked)} acknowledged, {n} in new/, none partial, none missing")

# Restarted, it serves again; then SIGTERM under load.
server = start(port)
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.sendmail("a@example.com", ["b@example.net"], body("after-restart")); total_acked.append("after-restart")
acked, codes, drops, stop = [], [], [], threading.Event()
threads = [threading.Thread(target=client, args=(port, f"t{i}", acked, codes, drops, stop)) for i in range(4)]
for t in threads: t.start()
wait_for_acks(acked, 4)
server.send_signal(signal.SIGTERM)
rc = server.wait(timeout=40)
stop.set()
for t in threads: t.join(timeout=20)
total_acked += acked
n = check(total_acked)
# Every client was in a session when SIGTERM came: each must be told 421 (after its message
# in flight was answered), none dropped without a reply.
assert not drops, f"connections dropped without a reply at shutdown: {drops}"
assert codes == [421] * 4, f"clients got {codes} at shutdown, wanted one 421 each"
assert rc == 0, f"exit code {rc} after SIGTERM"
print(f"SIGTERM: exited 0, {len(acked)} acknowledged under load, {len(codes)} clients told 421, {n} in new/, nothing missing")
