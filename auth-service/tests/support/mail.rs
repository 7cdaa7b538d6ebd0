//! Reading mail as a person would: parse the MIME message, take its text part, and find the
//! line that is the code. Shared by the service's and the gateway's tests.
#![allow(dead_code)] // each test binary uses its part

use std::{path::Path, time::SystemTime};

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
