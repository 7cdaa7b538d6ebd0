//! Reading mail as a person would: parse the MIME message, take its text part, and find the
//! line that is the code. Mail is read where it lands ([`Mailbox`]): the development mailer's
//! folder of `.eml` files, or the SMTP test server's Maildir.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    modified: SystemTime,
}

/// Parses one raw RFC 5322 message; `None` when it is not (yet) a whole message.
pub fn parse_mail(bytes: &[u8]) -> Option<Mail> {
    let message = mail_parser::MessageParser::default().parse(bytes)?;
    Some(Mail {
        to: message.to()?.first()?.address()?.to_string(),
        subject: message.subject().unwrap_or_default().to_string(),
        text: message.body_text(0)?.to_string(),
        html: message
            .body_html(0)
            .map(|h| h.to_string())
            .unwrap_or_default(),
        modified: SystemTime::UNIX_EPOCH,
    })
}

/// Parses every .eml in `dir`, oldest first; a file still being written is skipped.
pub fn read_mails(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut mails: Vec<Mail> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            let mail = parse_mail(&std::fs::read(e.path()).ok()?)?;
            Some(Mail { modified, ..mail })
        })
        .collect();
    mails.sort_by_key(|m| m.modified);
    mails
}

/// The code as a person finds it: the line of the text part that is exactly six digits
/// (the greeting may hold digits too).
pub fn extract_code(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
}

/// Where a test's mail lands.
pub trait Mailbox {
    /// Every whole message received so far, oldest first.
    fn mails(&self) -> Vec<Mail>;

    /// Every message to `email` (case-insensitive), oldest first.
    fn mails_to(&self, email: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.eq_ignore_ascii_case(email))
            .collect()
    }
}

/// The development mailer's folder of `.eml` files.
impl Mailbox for Path {
    fn mails(&self) -> Vec<Mail> {
        read_mails(self)
    }
}

/// Waits (up to `within`) until `email` has at least `nth` messages and the nth holds a code
/// (a file being written may not yet), and returns that code; panics naming the mail when it
/// does not come in time.
pub async fn wait_for_code(
    mailbox: &(impl Mailbox + ?Sized),
    email: &str,
    nth: usize,
    within: Duration,
) -> String {
    assert!(nth >= 1, "mail numbers start at 1");
    let deadline = Instant::now() + within;
    loop {
        let mails = mailbox.mails_to(email);
        let code = mails.get(nth - 1).map(|mail| extract_code(&mail.text));
        if let Some(Some(code)) = code {
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "{} within {within:?} (have {} mails to {email})",
            match code {
                Some(_) => format!("mail #{nth} to {email} held no 6-digit code"),
                None => format!("mail #{nth} to {email} did not arrive"),
            },
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
