//! Helpers shared by the store tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use baton_model::{Command, Update};
use baton_store::{Entry, LogId};
use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership};

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

pub fn initialize() -> Update {
    let command = Command::Initialize {
        cluster_name: "prod".to_string(),
        admin_token_hash: "hash".to_string(),
        node_name: "alpha".to_string(),
        addr: "10.0.0.1:7100".to_string(),
    };
    Update {
        now_ms: 1_000,
        command,
    }
}

pub fn create_group(name: &str) -> Update {
    let command = Command::CreateGroup {
        name: name.to_string(),
        preferred_owners: vec![1],
    };
    Update {
        now_ms: 2_000,
        command,
    }
}

pub fn normal(index: u64, update: Update) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(update),
    }
}

pub fn blank(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Blank,
    }
}

/// Node 1 as the single voter, at address `10.0.0.1:7000`.
pub fn membership(index: u64) -> Entry {
    let nodes = BTreeMap::from([(1, BasicNode::new("10.0.0.1:7000"))]);
    let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(membership),
    }
}

/// Membership, `Initialize` and one `CreateGroup` at indexes 0, 1 and 2.
pub fn first_entries() -> Vec<Entry> {
    vec![
        membership(0),
        normal(1, initialize()),
        normal(2, create_group("web")),
    ]
}
