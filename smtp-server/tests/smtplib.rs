//! Python's smtplib as a second real client (`tests/interop/smtplib_client.py`): plain,
//! STARTTLS, AUTH PLAIN and LOGIN, SMTPUTF8, a 10 MB message.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Capture, certificate};
use smtp_server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib() {
    if Command::new("python3").arg("--version").output().is_err() {
        common::skip("python3 is not installed");
        return;
    }
    let (cert, key) = certificate();
    let dir = std::env::temp_dir().join(format!("smtplib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cafile = dir.join("ca.pem");
    std::fs::write(&cafile, &cert).unwrap();
    let capture = Capture::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .tls(smtp_server::load_pem(cert.as_bytes(), key.as_bytes()).unwrap())
        .auth_mechanisms(["PLAIN", "LOGIN"])
        .configure(|c| c.limits.message_size = 16 << 20)
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/smtplib_client.py"
    );
    let port = server.local_addr().unwrap().port().to_string();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .args([script, &port, cafile.to_str().unwrap()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("smtplib finished in time")
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "smtplib failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let got = capture.wait_for(4).await;
    let subjects: Vec<String> = got
        .iter()
        .map(|m| {
            m.message
                .parsed()
                .unwrap()
                .subject()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(subjects, ["plain", "tls plain", "utf8", "ten megabytes"]);
    assert!(got[1].info.tls.is_some() && got[1].info.auth.as_deref() == Some("user"));
    assert!(got[2].envelope.params.smtputf8);
    assert!(got[3].message.raw().len() > 10_000_000);
    server.shutdown().await.unwrap();
}
