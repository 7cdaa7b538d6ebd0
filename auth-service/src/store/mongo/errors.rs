//! Driver errors to store errors. Two questions matter to the caller: "is this a duplicate of
//! a unique field?" (a domain outcome, never a failure) and "is the server unreachable?"
//! (retry later: `Unavailable`); everything else is `Internal`.

use std::error::Error as _;

use mongodb::error::{Error, ErrorKind, WriteFailure};

use super::document::{EMAIL_INDEX, USERNAME_KEY_INDEX};
use crate::store::{CreateUserError, StoreError};

/// `DuplicateKey`, and the code older servers gave it on updates.
const DUPLICATE_KEY_CODES: [i32; 2] = [11000, 11001];

/// Server codes that mean "not reachable or not able to serve right now", not "bad request".
const UNAVAILABLE_CODES: [i32; 15] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    64,    // WriteConcernFailed (timed out waiting for replication)
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The error of a failed insert of a user: a duplicate email or username key is the domain
/// outcome, told apart by the index the server names.
pub(super) fn create_user_error(e: Error) -> CreateUserError {
    match duplicate_key_index(&e).as_deref() {
        Some(EMAIL_INDEX) => CreateUserError::EmailTaken,
        Some(USERNAME_KEY_INDEX) => CreateUserError::UsernameTaken,
        Some("_id_") => CreateUserError::IdTaken,
        _ => CreateUserError::Store(store_error(e)),
    }
}

/// `Unavailable` when the server cannot be reached or cannot serve now, else `Internal`.
pub(super) fn store_error(e: Error) -> StoreError {
    let message = e.kind.to_string();
    if is_unavailable(&e) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Internal(message)
    }
}

fn is_unavailable(e: &Error) -> bool {
    chain(e).any(|e| {
        e.contains_label("RetryableWriteError")
            || match e.kind.as_ref() {
                ErrorKind::ServerSelection { .. }
                | ErrorKind::Io(_)
                | ErrorKind::ConnectionPoolCleared { .. }
                | ErrorKind::DnsResolve { .. } => true,
                ErrorKind::Command(c) => UNAVAILABLE_CODES.contains(&c.code),
                ErrorKind::Write(WriteFailure::WriteConcernError(c)) => {
                    UNAVAILABLE_CODES.contains(&c.code)
                }
                _ => false,
            }
    })
}

/// Whether `e` is a duplicate of the document's `_id` (an insert another writer made first).
pub(super) fn is_duplicate_id(e: &Error) -> bool {
    duplicate_key_index(e).as_deref() == Some("_id_")
}

/// The name of the unique index a duplicate-key error hit, wherever the driver put it: a
/// single write error, the write errors of a batch, or a command error.
fn duplicate_key_index(e: &Error) -> Option<String> {
    chain(e).find_map(|e| {
        let messages: Vec<&str> = match e.kind.as_ref() {
            ErrorKind::Write(WriteFailure::WriteError(w))
                if DUPLICATE_KEY_CODES.contains(&w.code) =>
            {
                vec![w.message.as_str()]
            }
            ErrorKind::InsertMany(m) => m
                .write_errors
                .iter()
                .flatten()
                .filter(|w| DUPLICATE_KEY_CODES.contains(&w.code))
                .map(|w| w.message.as_str())
                .collect(),
            ErrorKind::BulkWrite(b) => b
                .write_errors
                .values()
                .filter(|w| DUPLICATE_KEY_CODES.contains(&w.code))
                .map(|w| w.message.as_str())
                .collect(),
            ErrorKind::Command(c) if DUPLICATE_KEY_CODES.contains(&c.code) => {
                vec![c.message.as_str()]
            }
            _ => Vec::new(),
        };
        messages.into_iter().find_map(index_named_in)
    })
}

/// `E11000 duplicate key error collection: db.users index: email_1 dup key: { ... }` names
/// the index after `index: `. Only that token counts: the duplicated value itself may be any
/// text, even the name of the other index.
fn index_named_in(message: &str) -> Option<String> {
    let (_, rest) = message.split_once(" index: ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// The error and the driver errors it wraps.
fn chain(e: &Error) -> impl Iterator<Item = &Error> {
    std::iter::successors(Some(e), |&e| {
        e.source().and_then(|s| s.downcast_ref::<Error>())
    })
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc};

    use mongodb::{
        bson::{self, doc},
        error::{BulkWriteError, CommandError, InsertManyError, WriteError},
    };

    use super::*;

    fn dup_message(index: &str, key: &str, value: &str) -> String {
        format!(
            "E11000 duplicate key error collection: app.users index: {index} dup key: \
             {{ {key}: \"{value}\" }}"
        )
    }

    fn write_error(code: i32, message: &str) -> WriteError {
        bson::from_document(doc! { "code": code, "errmsg": message }).unwrap()
    }

    fn command_error(code: i32, message: &str) -> CommandError {
        bson::from_document(doc! { "code": code, "codeName": "X", "errmsg": message }).unwrap()
    }

    fn from_write(code: i32, message: &str) -> Error {
        ErrorKind::Write(WriteFailure::WriteError(write_error(code, message))).into()
    }

    #[test]
    fn a_duplicate_email_or_username_is_told_apart_by_the_index_name() {
        let email = from_write(11000, &dup_message("email_1", "email", "a@example.com"));
        assert!(matches!(
            create_user_error(email),
            CreateUserError::EmailTaken
        ));
        // The duplicated username is itself the other index's name: only `index: X` counts.
        let name = from_write(
            11000,
            &dup_message("username_key_1", "usernameKey", "email_1"),
        );
        assert!(matches!(
            create_user_error(name),
            CreateUserError::UsernameTaken
        ));
    }

    #[test]
    fn a_duplicate_is_found_in_batches_and_command_errors() {
        let many: InsertManyError = bson::from_document(doc! {
            "writeErrors": [{
                "index": 0,
                "code": 11000,
                "errmsg": dup_message("username_key_1", "usernameKey", "ana"),
            }],
        })
        .unwrap();
        assert!(matches!(
            create_user_error(ErrorKind::InsertMany(many).into()),
            CreateUserError::UsernameTaken
        ));

        let mut bulk = BulkWriteError::default();
        bulk.write_errors = HashMap::from([(
            3,
            write_error(11000, &dup_message("email_1", "email", "b@example.com")),
        )]);
        assert!(matches!(
            create_user_error(ErrorKind::BulkWrite(bulk).into()),
            CreateUserError::EmailTaken
        ));

        let command = command_error(11000, &dup_message("email_1", "email", "c@example.com"));
        assert!(matches!(
            create_user_error(ErrorKind::Command(command).into()),
            CreateUserError::EmailTaken
        ));
    }

    #[test]
    fn other_duplicates_and_other_write_errors_are_internal() {
        let id = from_write(11000, &dup_message("_id_", "_id", "u1"));
        assert!(matches!(create_user_error(id), CreateUserError::IdTaken));
        // A non-duplicate error whose text happens to name the index is not a duplicate.
        let other = from_write(2, "bad value for index: email_1 ");
        assert!(matches!(
            create_user_error(other),
            CreateUserError::Store(StoreError::Internal(_))
        ));
    }

    #[test]
    fn unreachable_servers_are_unavailable() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            store_error(ErrorKind::Io(Arc::new(refused)).into()),
            StoreError::Unavailable(_)
        ));
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        assert!(matches!(
            store_error(ErrorKind::Io(Arc::new(timeout)).into()),
            StoreError::Unavailable(_)
        ));
        for code in [91, 10107, 11600, 189, 50] {
            let e: Error = ErrorKind::Command(command_error(code, "not now")).into();
            assert!(
                matches!(store_error(e), StoreError::Unavailable(_)),
                "code {code}"
            );
        }
        let unauthorized: Error = ErrorKind::Command(command_error(13, "unauthorized")).into();
        assert!(matches!(store_error(unauthorized), StoreError::Internal(_)));
        // An unreachable server during a create is Unavailable, not a domain outcome.
        let down = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            create_user_error(ErrorKind::Io(Arc::new(down)).into()),
            CreateUserError::Store(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn the_index_name_is_the_token_after_index() {
        assert_eq!(
            index_named_in(&dup_message("email_1", "email", "x")).as_deref(),
            Some("email_1")
        );
        assert_eq!(index_named_in("E11000 duplicate key error"), None);
    }
}
