//! PostgreSQL: which node writes hot accounts for the others (the leader), so that one account's
//! usages from every node meet in one writer's batches instead of queueing for its row lock.
//!
//! Leadership is a session advisory lock ([`LEADER_LOCK`]): the node whose connection holds it
//! is the leader, and PostgreSQL releases it the moment that connection ends (the process died,
//! the network failed), so another node takes over at its next try. The leader writes the URL
//! other nodes reach it at, and a random id of its run, in `cluster_leader`; the others read that
//! row, only while the lock is held by someone. Every node tries or reads every
//! [`LEADERSHIP_POLL`].
//!
//! Leadership is a hint for speed, never for correctness: every batch still locks the rows it
//! writes, so two nodes that both think they lead, or a node forwarding to a leader that just
//! died, are slower, not wrong. A node with no URL to advertise never leads.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::StoreError;

/// The advisory lock key of leadership (ASCII "lead"), distinct from the migrations' lock.
const LEADER_LOCK: u32 = 0x6c65_6164;

/// How often a node tries to lead, or reads who leads.
const LEADERSHIP_POLL: Duration = Duration::from_millis(500);

/// Who leads, as this node last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leader {
    /// This node holds the leadership.
    pub me: bool,
    /// Another node leads, reachable at `url`; its run's id is `id`.
    pub other: Option<LeaderAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAddress {
    pub url: String,
    pub id: String,
}

/// The leadership as seen by this node, kept fresh by its `credits-leader` thread.
#[derive(Clone)]
pub struct Leadership {
    seen: Arc<RwLock<Arc<Leader>>>,
    /// This node's run id, which a forwarded request must name.
    id: Arc<str>,
}

impl Leadership {
    /// Read on every hot usage: a shared handle, not a copy of its strings.
    pub fn current(&self) -> Arc<Leader> {
        self.seen.read().map(|leader| Arc::clone(&leader)).unwrap_or_default()
    }

    /// This run's id: random, so that a request meant for another run (an address reused by a
    /// restarted node, a loopback URL seen from another machine) is recognised and refused.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts the thread that campaigns for leadership (when `advertise` is given) and reads
    /// who leads. It stops when the process does.
    pub(crate) fn start(
        config: postgres::Config,
        advertise: Option<String>,
    ) -> Result<Leadership, StoreError> {
        let id: [u8; 16] = rand::random();
        let id: Arc<str> = id.iter().map(|b| format!("{b:02x}")).collect::<String>().into();
        let leadership = Leadership { seen: Arc::default(), id: id.clone() };
        let seen = leadership.seen.clone();
        std::thread::Builder::new()
            .name("credits-leader".into())
            .spawn(move || campaign(&config, advertise.as_deref(), &id, &seen))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(leadership)
    }
}

fn campaign(
    config: &postgres::Config,
    advertise: Option<&str>,
    id: &str,
    seen: &RwLock<Arc<Leader>>,
) {
    let mut connection: Option<postgres::Client> = None;
    let mut leading = false;
    loop {
        let client = match connection.as_mut().filter(|c| !c.is_closed()) {
            Some(client) => client,
            None => {
                leading = false;
                match crate::pg::client(config) {
                    Ok(client) => connection.insert(client),
                    Err(error) => {
                        tracing::debug!(%error, "leadership: no connection");
                        publish(seen, Leader::default());
                        std::thread::sleep(LEADERSHIP_POLL);
                        continue;
                    }
                }
            }
        };
        match poll(client, advertise, id, &mut leading) {
            Ok(leader) => publish(seen, leader),
            Err(error) => {
                tracing::warn!(%error, "leadership: lost the database; writing every account here");
                connection = None;
                leading = false;
                publish(seen, Leader::default());
            }
        }
        std::thread::sleep(LEADERSHIP_POLL);
    }
}

fn publish(seen: &RwLock<Arc<Leader>>, leader: Leader) {
    if let Ok(mut current) = seen.write() {
        if **current != leader {
            tracing::info!(me = leader.me, other = ?leader.other, "leadership changed");
            metrics::gauge!("credits_cluster_leader").set(if leader.me { 1.0 } else { 0.0 });
            let known = leader.me || leader.other.is_some();
            metrics::gauge!("credits_cluster_leader_known").set(if known { 1.0 } else { 0.0 });
            *current = Arc::new(leader);
        }
    }
}

fn poll(
    client: &mut postgres::Client,
    advertise: Option<&str>,
    id: &str,
    leading: &mut bool,
) -> Result<Leader, postgres::Error> {
    if let (Some(url), false) = (advertise, *leading) {
        let won: bool =
            client.query_one("SELECT pg_try_advisory_lock($1)", &[&i64::from(LEADER_LOCK)])?.get(0);
        if won {
            client.execute(
                "INSERT INTO cluster_leader (id, url, run_id) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url, run_id = excluded.run_id",
                &[&url, &id],
            )?;
            *leading = true;
        }
    }
    if *leading {
        // Still connected, so still holding the lock.
        client.simple_query("")?;
        return Ok(Leader { me: true, other: None });
    }
    // The row of a leader whose session ended says nothing: read it only while the lock is held.
    let row = client.query_opt(
        "SELECT url, run_id FROM cluster_leader WHERE id = 1 AND EXISTS ( \
             SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid = 0 AND objid = $1 AND objsubid = 1 AND database = ( \
                 SELECT oid FROM pg_database WHERE datname = current_database()))",
        &[&LEADER_LOCK],
    )?;
    let other = row.map(|row| LeaderAddress { url: row.get(0), id: row.get(1) });
    Ok(Leader { me: false, other: other.filter(|address| address.id != id) })
}
