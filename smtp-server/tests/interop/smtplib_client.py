"""Python's smtplib against our server: plain, STARTTLS, AUTH PLAIN and LOGIN, SMTPUTF8, 10 MB.

Run by smtp-server/tests/smtplib.rs with the port and the CA file; exits non-zero on failure.
"""
import smtplib
import ssl
import sys

port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)

with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    code, _ = s.ehlo("python.example")
    assert code == 250 and s.has_extn("pipelining") and s.has_extn("starttls"), s.esmtp_features
    s.sendmail("ann@example.com", ["bob@example.net"], b"Subject: plain\r\n\r\nhello from smtplib\r\n")

with smtplib.SMTP("localhost", port, timeout=20) as s:
    s.starttls(context=ctx)
    s.login("user", "secret")  # smtplib picks PLAIN
    s.sendmail("ann@example.com", ["bob@example.net"], b"Subject: tls plain\r\n\r\nsecure\r\n")

with smtplib.SMTP("localhost", port, timeout=20) as s:
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = "user", "secret"
    code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    assert code == 235, code
    msg = "Subject: utf8\r\n\r\nGrüße 你好\r\n".encode()
    s.sendmail("ann@example.com", ["用户@例子.广告"], msg, mail_options=["SMTPUTF8"])
    # RFC 4954 4: a second AUTH is refused with 503.
    code, _ = s.docmd("AUTH", "PLAIN AHVzZXIAd3Jvbmc=")
    assert code == 503, code

with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: ten megabytes\r\n\r\n" + line * (10 * 1024 * 1024 // len(line))
    s.sendmail("ann@example.com", ["bob@example.net"], body)

print("smtplib: 4 messages sent")
