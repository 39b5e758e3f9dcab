//! Notification delivery against real receivers: an HTTP server started here on 127.0.0.1:0 and
//! a TCP listener that accepts and never answers.

#[path = "notify/http.rs"]
mod http;
#[path = "notify/support.rs"]
mod support;
