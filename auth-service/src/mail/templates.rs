//! The mails the service writes: sign-up, password reset and sign-in codes, the notice to an
//! address's owner when someone signs up with it again (`SIGNUP_ENUMERATION_SAFE`), and the
//! notice of a change of a user's second factors. Each has a
//! text and an HTML part, branded with `APP_NAME`; text that comes from users is HTML-escaped.

use super::OutgoingMail;

/// Branded code mails with a text and an HTML part.
#[derive(Debug, Clone)]
pub struct Templates {
    pub app_name: String,
}

impl Templates {
    pub fn verification_code(
        &self,
        to: &str,
        username: Option<&str>,
        code: &str,
        ttl: std::time::Duration,
    ) -> OutgoingMail {
        self.code_mail(
            to,
            format!("Your {} verification code", self.app_name),
            username,
            &format!(
                "Welcome to {}! Use this code to verify your email address:",
                self.app_name
            ),
            code,
            ttl,
            "If you did not sign up, you can ignore this email.",
        )
    }

    pub fn password_reset_code(
        &self,
        to: &str,
        username: Option<&str>,
        code: &str,
        ttl: std::time::Duration,
    ) -> OutgoingMail {
        self.code_mail(
            to,
            format!("Your {} password reset code", self.app_name),
            username,
            "Someone asked to reset the password of your account. Use this code to choose a new one:",
            code,
            ttl,
            "If it was not you, ignore this email: your password stays as it is.",
        )
    }

    pub fn login_code(
        &self,
        to: &str,
        username: Option<&str>,
        code: &str,
        ttl: std::time::Duration,
    ) -> OutgoingMail {
        self.code_mail(
            to,
            format!("Your {} sign-in code", self.app_name),
            username,
            "Someone asked to sign in to your account with a code. Use this code to sign in:",
            code,
            ttl,
            "If it was not you, ignore this email: nobody can sign in without this code.",
        )
    }

    /// To the new address of an email change: the code that proves it is the user's.
    pub fn email_change_code(
        &self,
        to: &str,
        username: &str,
        code: &str,
        ttl: std::time::Duration,
    ) -> OutgoingMail {
        self.code_mail(
            to,
            format!("Confirm your new {} email address", self.app_name),
            Some(username),
            "Someone asked to make this the email address of your account. Use this code to confirm it:",
            code,
            ttl,
            "If it was not you, ignore this email: nothing changes without this code.",
        )
    }

    /// To the owner of an address someone tried to change their account's email to.
    pub fn email_change_attempt_notice(&self, to: &str, username: &str) -> OutgoingMail {
        let app = &self.app_name;
        self.notice(
            to,
            format!("Someone tried to use your address on {app}"),
            username,
            &[format!(
                "Someone just tried to change the email address of another {app} account to \
                 this one. Your account already uses it, so nothing changed."
            )],
            "You do not need to do anything.",
        )
    }

    /// To the old address of an email change: when it happened and from where.
    pub fn email_changed_notice(
        &self,
        to: &str,
        username: &str,
        new_email: &str,
        when: &str,
        ip: &str,
    ) -> OutgoingMail {
        let app = &self.app_name;
        self.notice(
            to,
            format!("The email address of your {app} account changed"),
            username,
            &[format!(
                "The email address of your account was changed to {new_email} at {when} \
                     (UTC), from the address {ip}. Mail about your account goes there now, and \
                     this address no longer signs in."
            )],
            "If it was not you, reply to this email at once.",
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn code_mail(
        &self,
        to: &str,
        subject: String,
        username: Option<&str>,
        intro: &str,
        code: &str,
        ttl: std::time::Duration,
        outro: &str,
    ) -> OutgoingMail {
        let app = &self.app_name;
        let ttl_text = humantime::format_duration(ttl);
        let greeting = username
            .map(|u| format!("Hi {u},"))
            .unwrap_or_else(|| "Hi,".to_owned());
        let text = format!(
            "{greeting}\n\n{intro}\n\n    {code}\n\nThe code expires in {ttl_text}.\n\n{outro}\n\n- The {app} team\n"
        );
        let (app_h, greeting_h, intro_h, outro_h) =
            (escape(app), escape(&greeting), escape(intro), escape(outro));
        let html = format!(
            r#"<!doctype html>
<html><body style="margin:0;padding:24px;background:#f4f4f7;font-family:Helvetica,Arial,sans-serif;color:#333">
<table role="presentation" width="100%" style="max-width:520px;margin:auto;background:#fff;border-radius:8px;padding:32px">
<tr><td><h1 style="font-size:22px;color:#4f46e5;margin:0 0 24px">{app_h}</h1>
<p>{greeting_h}</p><p>{intro_h}</p>
<p style="font-size:32px;letter-spacing:8px;font-weight:bold;text-align:center;background:#eef;padding:16px;border-radius:6px">{code}</p>
<p>The code expires in {ttl_text}.</p><p style="color:#777">{outro_h}</p>
<p>- The {app_h} team</p></td></tr></table></body></html>
"#
        );
        OutgoingMail {
            to: to.to_owned(),
            subject,
            text,
            html,
            expires_at: None,
        }
    }

    /// To the owner of an email someone tried to sign up with again (SIGNUP_ENUMERATION_SAFE).
    pub fn signup_attempt_notice(&self, to: &str, username: &str) -> OutgoingMail {
        let app = &self.app_name;
        self.notice(
            to,
            format!("Someone tried to sign up for {app} with your address"),
            username,
            &[
                format!(
                    "Someone just tried to create a new {app} account with this email address. \
                     Your account already uses it, so nothing changed."
                ),
                "If it was you, sign in instead, or reset your password if you forgot it.".into(),
            ],
            "If it was not you, you can ignore this email.",
        )
    }

    /// To a user whose second factors changed, so that a change they did not make is seen.
    pub fn factor_notice(&self, to: &str, username: &str, change: FactorChange) -> OutgoingMail {
        let app = &self.app_name;
        let (subject, what) = match change {
            FactorChange::TotpOn => (
                format!("Two-factor sign-in is on for your {app} account"),
                "Two-factor sign-in with an authenticator app was turned on for your account. \
                 Signing in now needs a code from the app (or one of your recovery codes), and \
                 your other devices were signed out.",
            ),
            FactorChange::TotpOff => (
                format!("Two-factor sign-in is off for your {app} account"),
                "Two-factor sign-in with an authenticator app was turned off for your account, \
                 and your other devices were signed out. Your password alone signs in again.",
            ),
            FactorChange::RecoveryCodesReplaced => (
                format!("New recovery codes for your {app} account"),
                "New recovery codes were made for your account; the old ones no longer work.",
            ),
            FactorChange::PasskeyAdded => (
                format!("A passkey was added to your {app} account"),
                "A passkey was added to your account: it signs in without your password.",
            ),
            FactorChange::PasskeyRemoved => (
                format!("A passkey was removed from your {app} account"),
                "A passkey was removed from your account; it no longer signs in, and your other \
                 devices were signed out.",
            ),
        };
        self.notice(
            to,
            subject,
            username,
            &[what.to_owned()],
            "If it was not you, reset your password now and sign out everywhere.",
        )
    }

    /// To a user whose account was deleted (by them, or by an operator).
    pub fn goodbye_notice(&self, to: &str, username: &str, by_operator: bool) -> OutgoingMail {
        let app = &self.app_name;
        let who = if by_operator {
            format!("Your {app} account was deleted by the {app} team.")
        } else {
            format!("Your {app} account was deleted, as you asked.")
        };
        self.notice(
            to,
            format!("Your {app} account was deleted"),
            username,
            &[
                format!(
                    "{who} Every device was signed out, and your sign-in methods, passkeys and \
                     profile are gone. Your username and this email address are free again."
                ),
                format!("Thank you for having used {app}."),
            ],
            "If you did not ask for this, reply to this email.",
        )
    }

    /// A notice (no code): greeting, paragraphs, a last word in grey.
    fn notice(
        &self,
        to: &str,
        subject: String,
        username: &str,
        paragraphs: &[String],
        last: &str,
    ) -> OutgoingMail {
        let app = &self.app_name;
        let body = paragraphs.join("\n\n");
        let text = format!("Hi {username},\n\n{body}\n\n{last}\n\n- The {app} team\n");
        let (app_h, user_h, last_h) = (escape(app), escape(username), escape(last));
        let body_h: String = paragraphs
            .iter()
            .map(|p| format!("<p>{}</p>", escape(p)))
            .collect();
        let html = format!(
            r#"<!doctype html>
<html><body style="margin:0;padding:24px;background:#f4f4f7;font-family:Helvetica,Arial,sans-serif;color:#333">
<table role="presentation" width="100%" style="max-width:520px;margin:auto;background:#fff;border-radius:8px;padding:32px">
<tr><td><h1 style="font-size:22px;color:#4f46e5;margin:0 0 24px">{app_h}</h1>
<p>Hi {user_h},</p>{body_h}
<p style="color:#777">{last_h}</p>
<p>- The {app_h} team</p></td></tr></table></body></html>
"#
        );
        OutgoingMail {
            to: to.to_owned(),
            subject,
            text,
            html,
            expires_at: None,
        }
    }
}

/// What changed in a user's second factors, for [`Templates::factor_notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorChange {
    TotpOn,
    TotpOff,
    RecoveryCodesReplaced,
    PasskeyAdded,
    PasskeyRemoved,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_carry_the_code_and_html_is_escaped() {
        let t = Templates {
            app_name: "Baat <Cheet>".into(),
        };
        let m = t.verification_code(
            "a@example.com",
            Some("ana"),
            "012345",
            std::time::Duration::from_secs(300),
        );
        assert!(m.text.contains("012345") && m.html.contains("012345"));
        assert!(m.html.contains("Baat &lt;Cheet&gt;"));
        assert!(!format!("{m:?}").contains("012345"));
    }

    #[test]
    fn notices_name_the_change_and_escape_the_user() {
        let t = Templates {
            app_name: "Baat Cheet".into(),
        };
        let m = t.factor_notice("a@example.com", "<ana>", FactorChange::TotpOff);
        assert_eq!(
            m.subject,
            "Two-factor sign-in is off for your Baat Cheet account"
        );
        assert!(m.text.starts_with("Hi <ana>,") && m.text.contains("turned off"));
        assert!(m.html.contains("Hi &lt;ana&gt;,") && !m.html.contains("<ana>"));
        let notice = t.signup_attempt_notice("a@example.com", "ana");
        assert!(notice.text.contains("nothing changed") && notice.html.contains("sign in instead"));
    }
}
