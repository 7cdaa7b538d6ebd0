//! `mail-code DIR EMAIL [N]`: prints the code of the newest `.eml` in DIR addressed to EMAIL (or
//! of the Nth, counting from 1 = the oldest), read as a person would (the text part's line that
//! is six digits). Exit 1 when there is no such mail yet, 3 when it holds no code (yet: a file
//! still being written), 2 on bad arguments. Scripts and the browser and schemathesis tests read
//! codes with it, so every test reads mail with the reader of the Rust tests.

use std::{path::Path, process::ExitCode};

use baatcheet_test_support::mail::{Mailbox, extract_code};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, email, nth) = match args.as_slice() {
        [dir, email] => (dir, email, None),
        [dir, email, n] => match n.parse::<usize>() {
            Ok(n) if n >= 1 => (dir, email, Some(n)),
            _ => return usage(),
        },
        _ => return usage(),
    };
    let mut mails = Path::new(dir).mails_to(email);
    let mail = match nth {
        None => mails.pop(),
        Some(n) if n <= mails.len() => Some(mails.swap_remove(n - 1)),
        Some(_) => None,
    };
    let Some(mail) = mail else {
        return ExitCode::from(1);
    };
    match extract_code(&mail.text) {
        Some(code) => {
            println!("{code}");
            ExitCode::SUCCESS
        }
        None => ExitCode::from(3),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: mail-code DIR EMAIL [N]   (N: the Nth mail to EMAIL, 1 = the oldest)");
    ExitCode::from(2)
}
