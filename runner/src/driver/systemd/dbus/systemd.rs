//! The systemd manager calls the runner needs (org.freedesktop.systemd1(5)),
//! typed.
//!
//! Works on the bus (after [`Connection::hello`]) and on systemd's private
//! peer-to-peer socket (/run/systemd/private as root,
//! $XDG_RUNTIME_DIR/systemd/private for a user manager), which has no bus
//! daemon and gets every signal unasked.
//!
//! To wait for a job: [`subscribe`] once, then start or stop the unit,
//! then [`wait_job`] with the job path the call returned. Subscribing
//! first matters on the bus: a JobRemoved sent before the match rule is
//! in place is never delivered.

use std::time::Duration;

use super::conn::{Connection, DbusError, unexpected};
use super::message::Message;
use super::wire::{Type, Value};

pub const SERVICE: &str = "org.freedesktop.systemd1";
pub const PATH: &str = "/org/freedesktop/systemd1";
pub const MANAGER: &str = "org.freedesktop.systemd1.Manager";
#[cfg(test)]
pub const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
#[cfg(test)]
const ALREADY_SUBSCRIBED: &str = "org.freedesktop.systemd1.AlreadySubscribed";
/// The match rule that delivers JobRemoved on a bus.
#[cfg(test)]
pub const JOB_REMOVED_RULE: &str = "type='signal',sender='org.freedesktop.systemd1',\
    interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";
/// A transient unit property's value, as StartTransientUnit takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropValue {
    /// `s`: Description, Slice, CollectMode.
    Str(String),
    /// `b`: Delegate, DefaultDependencies.
    Bool(bool),
    /// `t`: MemoryHigh, MemoryMax, TasksMax, CPUQuotaPerSecUSec.
    U64(u64),
    /// `au`: PIDs.
    U32s(Vec<u32>),
    /// `as`: BindsTo, After, Wants.
    Strs(Vec<String>),
}

impl PropValue {
    fn to_value(&self) -> Value {
        match self {
            PropValue::Str(s) => Value::Str(s.clone()),
            PropValue::Bool(b) => Value::Bool(*b),
            PropValue::U64(n) => Value::U64(*n),
            PropValue::U32s(ns) => Value::Array(Type::U32, ns.iter().copied().map(Value::U32).collect()),
            PropValue::Strs(ss) => Value::Array(Type::Str, ss.iter().cloned().map(Value::Str).collect()),
        }
    }
}

/// One JobRemoved signal's body (`uoss`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRemoved {
    pub id: u32,
    pub job: String,
    pub unit: String,
    /// done, canceled, timeout, failed, dependency or skipped.
    pub result: String,
}

/// The JobRemoved signal in `m`, if that is what `m` is.
pub fn job_removed(m: &Message) -> Option<JobRemoved> {
    if !m.is_signal(MANAGER, "JobRemoved") || m.path.as_deref() != Some(PATH) {
        return None;
    }
    match m.body.as_slice() {
        [Value::U32(id), Value::ObjectPath(job), Value::Str(unit), Value::Str(result)] => {
            Some(JobRemoved { id: *id, job: job.clone(), unit: unit.clone(), result: result.clone() })
        }
        _ => None,
    }
}

fn manager_call(member: &str, body: Vec<Value>) -> Message {
    Message::method_call(SERVICE, PATH, MANAGER, member).with_body(body)
}

/// The StartTransientUnit call, `ssa(sv)a(sa(sv))`, with no auxiliary
/// units.
pub fn start_transient_unit_message(name: &str, mode: &str, props: &[(&str, PropValue)]) -> Message {
    let prop = Type::Struct(vec![Type::Str, Type::Variant]);
    let props = props
        .iter()
        .map(|(k, v)| Value::Struct(vec![Value::Str((*k).to_owned()), Value::variant(v.to_value())]))
        .collect();
    let aux = Type::Struct(vec![Type::Str, Type::Array(Box::new(prop.clone()))]);
    manager_call(
        "StartTransientUnit",
        vec![
            Value::Str(name.to_owned()),
            Value::Str(mode.to_owned()),
            Value::Array(prop, props),
            Value::Array(aux, vec![]),
        ],
    )
}

/// Manager.SetUnitProperties(name, runtime, properties): changes a loaded
/// unit's properties; `runtime` keeps the change out of /etc (it lasts
/// until the unit is unloaded or the machine reboots).
pub fn set_unit_properties(
    conn: &mut Connection,
    name: &str,
    runtime: bool,
    props: &[(&str, PropValue)],
    timeout: Duration,
) -> Result<(), DbusError> {
    let prop = Type::Struct(vec![Type::Str, Type::Variant]);
    let props = props
        .iter()
        .map(|(k, v)| Value::Struct(vec![Value::Str((*k).to_owned()), Value::variant(v.to_value())]))
        .collect();
    let msg = manager_call(
        "SetUnitProperties",
        vec![Value::Str(name.to_owned()), Value::Bool(runtime), Value::Array(prop, props)],
    );
    conn.call(&msg, timeout).map(|_| ())
}

/// Test support (the runner never subscribes: on systemd's private
/// socket every signal arrives anyway).
/// Asks for JobRemoved: AddMatch on a bus (a no-op peer-to-peer), then
/// Manager.Subscribe, which is harmless when already subscribed.
#[cfg(test)]
pub fn subscribe(conn: &mut Connection, timeout: Duration) -> Result<(), DbusError> {
    conn.add_match(JOB_REMOVED_RULE, timeout)?;
    match conn.call(&manager_call("Subscribe", vec![]), timeout) {
        Ok(_) => Ok(()),
        Err(DbusError::Remote { name, .. }) if name == ALREADY_SUBSCRIBED => Ok(()),
        Err(e) => Err(e),
    }
}

/// Starts a transient unit; returns the job's object path.
pub fn start_transient_unit(
    conn: &mut Connection,
    name: &str,
    mode: &str,
    props: &[(&str, PropValue)],
    timeout: Duration,
) -> Result<String, DbusError> {
    let reply = conn.call(&start_transient_unit_message(name, mode, props), timeout)?;
    object_path("StartTransientUnit", &reply)
}

/// Waits for the JobRemoved of `job` and returns its result. The signal
/// may have arrived before the call that created the job returned: it is
/// then found in the connection's queue.
pub fn wait_job(conn: &mut Connection, job: &str, timeout: Duration) -> Result<String, DbusError> {
    let mut result = None;
    let m = conn.wait_signal(
        |m| match job_removed(m) {
            Some(j) if j.job == job => {
                result = Some(j.result);
                true
            }
            _ => false,
        },
        timeout,
    )?;
    result.ok_or_else(|| unexpected("JobRemoved", &m))
}

/// StopUnit; returns the job's object path.
pub fn stop_unit(conn: &mut Connection, name: &str, mode: &str, timeout: Duration) -> Result<String, DbusError> {
    let msg = manager_call("StopUnit", vec![Value::Str(name.to_owned()), Value::Str(mode.to_owned())]);
    object_path("StopUnit", &conn.call(&msg, timeout)?)
}

/// Manager.Reload (daemon-reload). It can take seconds on a busy host.
/// Test support: `systemd install` reloads through systemctl.
#[cfg(test)]
pub fn reload(conn: &mut Connection, timeout: Duration) -> Result<(), DbusError> {
    conn.call(&manager_call("Reload", vec![]), timeout).map(drop)
}

fn object_path(member: &str, reply: &Message) -> Result<String, DbusError> {
    match reply.body.as_slice() {
        [Value::ObjectPath(p)] => Ok(p.clone()),
        _ => Err(unexpected(member, reply)),
    }
}

#[cfg(test)]
#[path = "systemd_tests.rs"]
mod tests;
