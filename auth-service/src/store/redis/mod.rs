//! Redis state store (pending codes, sessions, limits, mail queue).
