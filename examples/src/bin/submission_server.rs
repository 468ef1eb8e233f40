//! A submission server: STARTTLS required, then AUTH PLAIN or LOGIN, then mail.
//!
//! ```text
//! cargo run -p examples --bin submission_server -- cert.pem key.pem [127.0.0.1:2587]
//! ```
//! Without certificate arguments it makes a self-signed one for `localhost` and prints it.
//! The only account is `user` / `secret`.
#![forbid(unsafe_code)]

use smtp_server::smtp_proto::{Credentials, Reply};
use smtp_server::{Body, Context, Handler, Server, async_trait};

struct Submission;

#[async_trait]
impl Handler for Submission {
    async fn auth(&self, _: &mut Context, c: &Credentials) -> Result<String, Reply> {
        smtp_server::Accounts::new([("user", "secret")]).verify(c)
    }

    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let msg = body.collect().await?;
        let (info, env) = (ctx.session(), ctx.envelope());
        println!(
            "{:?} sent {} bytes to {} recipient(s) over {:?}",
            info.auth,
            msg.raw().len(),
            env.recipients.len(),
            info.tls.as_ref().map(|t| t.protocol.as_str())
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), smtp_server::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tls = if args.len() >= 2 {
        smtp_server::load_pem_files(&args[0], &args[1])?
    } else {
        let generated = generate();
        println!("self-signed certificate for localhost:\n{}", generated.0);
        smtp_server::load_pem(generated.0.as_bytes(), generated.1.as_bytes())?
    };
    let addr = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2587".into());
    let server = Server::builder()
        .listen(addr)
        .tls(tls)
        .require_tls(true)
        .auth_mechanisms(["PLAIN", "LOGIN"])
        .auth_required(true)
        .handler(Submission)
        .bind()
        .await?;
    eprintln!("listening on {:?}", server.local_addrs());
    server
        .serve_with_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

fn generate() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}
