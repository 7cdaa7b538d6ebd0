//! Sign-in by emailed code for existing users: the code machinery of sign-up and reset
//! (hashed, bound to a `login_id` only the requester holds, the same budgets), the same answer
//! for known and unknown emails, and the second factor afterwards when the account has one.

use super::codes::{CodeRequested, parse_id};
use super::{AuthCore, ClientInfo, FlowError, SignInOutcome};
use crate::domain::{AllParsed, AuthMethod, Code, CodePurpose, Email, Violations};
use crate::store::PendingPayload;

impl AuthCore {
    /// RequestLoginCode: mails a sign-in code when an account has `email`; the answer (with a
    /// `login_id`) is the same either way.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn request_login_code(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<CodeRequested, FlowError> {
        self.request_account_code(CodePurpose::Login, email, client)
            .await
    }

    /// LoginWithCode: the code of the caller's request (counted against the network's hourly
    /// budget and the request's and email's) signs in, or leads to the second factor.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn login_with_code(
        &self,
        email: &str,
        code: &str,
        login_id: &str,
        client: &ClientInfo,
    ) -> Result<SignInOutcome, FlowError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(email));
        let code = v.check("code", Code::parse(code));
        let id = parse_id(&mut v, "login_id", login_id);
        let (email, code, id) = v.finish((email, code, id).all())?;
        let id = id.ok_or(FlowError::LoginIdRequired)?;
        let payload = self
            .check_code(CodePurpose::Login, &email, &id, &code, client)
            .await?;
        let PendingPayload::Login { user_id } = payload else {
            return Err(FlowError::LoginNotFound);
        };
        // Used once: the email's sign-in requests end before anything is started with it.
        self.stores
            .pending
            .finish_pending(CodePurpose::Login, &email)
            .await?;
        let user = self
            .stores
            .users
            .find_by_id(&user_id)
            .await?
            // The code went to the address the account had then: after an email change it
            // signs no one in.
            .filter(|u| u.email == email.as_str())
            .ok_or(FlowError::LoginNotFound)?;
        self.after_first_factor(user, AuthMethod::EmailCode, client)
            .await
    }
}
