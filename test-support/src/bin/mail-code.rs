//! `mail-code DIR EMAIL`: prints the code of the newest `.eml` in DIR addressed to EMAIL, read
//! as a person would (the text part's line that is six digits). Exit 1 when there is no such
//! mail yet, 3 when the newest one holds no code. Scripts use it to read the code the
//! development mailer wrote, with the same reader as the Rust tests.

use std::{path::Path, process::ExitCode};

use baatcheet_test_support::mail::{Mailbox, extract_code};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, email] = args.as_slice() else {
        eprintln!("usage: mail-code DIR EMAIL");
        return ExitCode::from(2);
    };
    let Some(newest) = Path::new(dir).mails_to(email).pop() else {
        return ExitCode::from(1);
    };
    match extract_code(&newest.text) {
        Some(code) => {
            println!("{code}");
            ExitCode::SUCCESS
        }
        None => ExitCode::from(3),
    }
}
