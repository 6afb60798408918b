//! Why a command is refused. Messages name the field and the fix.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    #[error("the cluster is not initialized yet: run `baton cluster create` first")]
    NotInitialized,
    #[error("unknown node {0}: `baton node list` shows the members")]
    UnknownNode(String),
    #[error("unknown group `{0}`: `baton group list` shows the groups")]
    UnknownGroup(String),
    #[error("unknown resource `{0}`: `baton resource list` shows the resources")]
    UnknownResource(String),
    #[error("{kind} `{name}` already exists: choose another name or delete it first")]
    Duplicate { kind: &'static str, name: String },
    #[error("invalid {field} `{value}`: {fix}")]
    InvalidName {
        field: &'static str,
        value: String,
        fix: &'static str,
    },
    #[error("join token refused: {0}")]
    JoinRefused(&'static str),
    #[error("node name `{0}` is taken: pick another with --name")]
    NodeNameTaken(String),
    #[error("address {0} is already used by node {1}")]
    AddressTaken(String, String),
    #[error("node {node} still owns group(s) {groups}: `baton node pause {node} --drain` first, or wait until its groups failed over")]
    NodeOwnsGroups { node: String, groups: String },
    #[error("node {0} is the last member: a cluster cannot evict its only node")]
    LastNode(String),
    #[error("group `{group}` is online on {node}: take it offline first (`baton group offline {group}`)")]
    GroupOnline { group: String, node: String },
    #[error("unknown resource type `{0}`: known types are process, systemd and ocf:PROVIDER:AGENT (e.g. ocf:heartbeat:Dummy)")]
    UnknownType(String),
    #[error("resource type {rtype} requires parameter `{param}`: add --param {param}=...")]
    MissingParam { rtype: String, param: String },
    #[error("resource type {rtype} has no parameter `{param}`: accepted are {accepted}")]
    UnknownParam {
        rtype: String,
        param: String,
        accepted: String,
    },
    #[error("unknown {kind} setting `{key}`: known are {accepted}")]
    UnknownSetting {
        kind: &'static str,
        key: String,
        accepted: String,
    },
    #[error("invalid {field} `{value}`: {fix}")]
    InvalidSetting {
        field: String,
        value: String,
        fix: String,
    },
    #[error("invalid dependencies of resource `{resource}`: {error}")]
    DependencySyntax { resource: String, error: String },
    #[error("resource `{resource}` cannot depend on `{name}`: it is not a resource of group `{group}` (dependencies stay inside a group)")]
    DependencyUnknown {
        resource: String,
        name: String,
        group: String,
    },
    #[error("{0}")]
    DependencyCycle(String),
    #[error("resource `{resource}` is a dependency of {dependents}: change their dependencies first (`baton resource depend NAME ''`)")]
    DependedOn {
        resource: String,
        dependents: String,
    },
    #[error(
        "possible owners leave no node to run group `{group}`: {detail}; widen possible_owners"
    )]
    NoPossibleOwner { group: String, detail: String },
    #[error(
        "{field}: node {node} is not a member of the cluster (`baton node list` shows the members)"
    )]
    NotAMember { field: &'static str, node: String },
    #[error("resource `{resource}` is {state}, not failed: nothing to restart")]
    NotFailed { resource: String, state: String },
    #[error("owner {node} of group `{group}` is not down: its assignment stays")]
    OwnerNotLost { group: String, node: String },
    #[error("invalid {field}: {reason}")]
    InvalidProperty { field: &'static str, reason: String },
    #[error("stale {what}: the group's current generation is {current}, not {given}")]
    StaleGeneration {
        what: &'static str,
        current: u64,
        given: u64,
    },
    #[error("group `{group}` is still assigned to {node}, which is {state}: a group never runs on two nodes")]
    StillAssigned {
        group: String,
        node: String,
        state: &'static str,
    },
    #[error("group `{0}` has no assignment")]
    NotAssigned(String),
    #[error("node {node} cannot take group `{group}`: it is {why}")]
    NodeUnfit {
        node: String,
        group: String,
        why: &'static str,
    },
}
