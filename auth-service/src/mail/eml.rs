//! The development mailer: each message becomes an `.eml` file in `MAIL_DIR`, where a person
//! (and the tests) read the code. Also builds the MIME message that both mailers send.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::{
    AsyncFileTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};

use super::{MailError, Mailer, OutgoingMail};

/// Development mailer: writes each message as `<id>.eml` into a folder and logs where.
pub struct EmlMailer {
    dir: PathBuf,
    from: Mailbox,
    transport: AsyncFileTransport<Tokio1Executor>,
}

impl EmlMailer {
    pub fn new(dir: PathBuf, from: &str) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let from = from
            .parse()
            .map_err(|e| format!("{from:?} is not a mailbox: {e}"))?;
        Ok(Self {
            transport: AsyncFileTransport::new(&dir),
            dir,
            from,
        })
    }
}

/// Builds the MIME message (multipart/alternative: text, then HTML).
pub(crate) fn build_message(from: &Mailbox, mail: &OutgoingMail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Permanent(format!("bad recipient: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&mail.subject)
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Permanent(e.to_string()))
}

#[async_trait]
impl Mailer for EmlMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        let id = self
            .transport
            .send(message)
            .await
            .map_err(|e| MailError::Transient(e.to_string()))?;
        tracing::info!(path = %self.dir.join(format!("{id}.eml")).display(), "wrote mail to the development mail folder");
        Ok(())
    }
}
