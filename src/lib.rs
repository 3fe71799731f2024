//! Mailstead: a self-hosted email campaign and CRM appliance. See ARCHITECTURE.md for the map.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod bounce;
pub mod cli;
pub mod compose;
pub mod config;
pub mod contacts;
pub mod control;
pub mod delivery;
pub mod feedback;
pub mod http;
pub mod import;
pub mod inbound;
pub mod links;
pub mod mailbox;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod policy;
pub mod search;
pub mod server;
pub mod store;
pub mod subscriptions;
pub mod tls;
