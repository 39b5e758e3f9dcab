//! Notification delivery against real receivers: an HTTP server started here on 127.0.0.1:0, a
//! TCP listener that accepts and never answers, the mosquitto broker on 127.0.0.1:1883 (started
//! by `scripts/test.sh`), and mosquitto brokers of our own for restarts and passwords. A missing broker
//! fails these tests; it never skips them.

#[path = "notify/egress.rs"]
mod egress;
#[path = "notify/http.rs"]
mod http;
#[path = "notify/mqtt.rs"]
mod mqtt;
#[path = "notify/support.rs"]
mod support;
