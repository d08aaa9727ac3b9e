//! End-to-end tests of `tandem-server` over real HTTP and real databases, in one binary (one
//! link on a 2-core machine) with a module per concern.

mod support;

mod accounts;
mod authorization;
mod binary;
mod demo_mailer;
mod emails;
mod errors;
mod history;
mod hostile;
mod lists;
mod mail;
mod operations;
mod reserved_ids;
mod sharing;
mod smtp_sink;
mod socket_limits;
mod storage;
mod streaming;
mod sync;
mod sync_client;
mod tokens;
