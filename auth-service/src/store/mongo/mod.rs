//! MongoDB user store.
