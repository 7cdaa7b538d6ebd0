//! Reading mail as a person would: parse the MIME message, take its text part, and find the
//! line that is the code. Mail is read where it lands ([`Mailbox`]): the development mailer's
//! folder of `.eml` files, or the SMTP test server's Maildir.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
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
    })
}

/// Parses every .eml in `dir`, oldest first; a file still being written is skipped.
pub fn read_mails(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let files = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    in_arrival_order(files)
        .into_iter()
        .filter_map(|p| parse_mail(&std::fs::read(p).ok()?))
        .collect()
}

/// Orders message files oldest first. A file's modification time alone cannot: the file system
/// stamps times at its clock tick (milliseconds), so two messages sent one after the other can
/// share one. So each file name gets a number the first time this process sees it (files new
/// in one look are numbered by modification time), and the numbers decide. A test that waits
/// for one mail before it causes the next thus reads them in the order they were sent.
pub(crate) fn in_arrival_order(files: Vec<PathBuf>) -> Vec<PathBuf> {
    static SEEN: Mutex<Option<HashMap<OsString, u64>>> = Mutex::new(None);
    let mut stamped: Vec<_> = files
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    stamped.sort();
    let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seen = seen.get_or_insert_with(HashMap::new);
    let mut numbered: Vec<(u64, PathBuf)> = stamped
        .into_iter()
        .filter_map(|(_, path)| {
            let name = path.file_name()?.to_owned();
            let next = seen.len() as u64;
            Some((*seen.entry(name).or_insert(next), path))
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, path)| path).collect()
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
