//! Cluster mode: several instances, one PostgreSQL, cameras spread over
//! the instances that are alive.
//!
//! Every `heartbeat_s` an instance records itself alive, renews the
//! leases of the cameras it holds, hands over those that [`spread`] now
//! gives to another live instance, and takes those it should hold whose
//! lease is free or ran out (`lease_s` after their holder went silent).
//! Taking a lease bumps its epoch, and every commit checks its camera's
//! lease and epoch in its own transaction ([`crate::store::Fence`]): an
//! instance cut off from the database or overtaken cannot record anything
//! for a camera it lost, so no camera is ever judged by two instances.
//! Consensus is PostgreSQL's; nothing here votes.

pub mod spread;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::base::time::{Millis, wall_clock_ms};
use crate::config::Config;
use crate::config::cluster::Cluster;
use crate::store::{Fence, Store, StoreError, UnwatchedCause};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    pub held: AtomicU64,
    pub live_members: AtomicU64,
    /// Leases taken (a new epoch): at start, on handover and on takeover.
    pub taken: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// Time its cameras were judged by no instance before this one took
    /// them (see [`crate::store::UnwatchedRow`]).
    pub unwatched_ms: AtomicU64,
}

/// What the rest of the daemon follows.
pub struct Membership {
    /// The cameras held here, changed between heartbeats.
    pub owned: watch::Receiver<Arc<HashSet<String>>>,
    pub fence: Arc<Fence>,
    pub counters: Arc<ClusterCounters>,
}

struct Task {
    me: Cluster,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    fence: Arc<Fence>,
    owned_tx: watch::Sender<Arc<HashSet<String>>>,
    counters: Arc<ClusterCounters>,
    started_ms: Millis,
    /// Until when the leases renewed last are surely still ours.
    valid_until: Option<Instant>,
    /// Since when the cameras held then have been judged by no one, after
    /// a renewal came too late.
    stopped: Option<(Instant, HashSet<String>)>,
}

/// Starts following the cluster; `stop` ends it, handing every camera
/// over at once (a clean stop or a rolling restart loses no lease time).
pub fn start(
    me: &Cluster,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    fence: Arc<Fence>,
    stop: CancellationToken,
) -> (Membership, tokio::task::JoinHandle<()>) {
    let (owned_tx, owned) = watch::channel(Arc::new(HashSet::new()));
    let counters = Arc::new(ClusterCounters::default());
    let task = Task {
        me: me.clone(),
        store,
        config,
        fence: fence.clone(),
        owned_tx,
        counters: counters.clone(),
        started_ms: wall_clock_ms(),
        valid_until: None,
        stopped: None,
    };
    tracing::info!(instance = %me.instance, lease_s = me.lease.as_secs_f64(), "cluster mode: joining");
    let handle = tokio::spawn(task.run(stop));
    (
        Membership {
            owned,
            fence,
            counters,
        },
        handle,
    )
}

impl Task {
    async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.me.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The leases' local deadline is kept to the moment, between
            // heartbeats and during one: another instance may take the
            // cameras soon after it.
            match tokio::select! {
                _ = stop.cancelled() => Step::Stop,
                _ = until(self.valid_until) => Step::Expired,
                _ = tick.tick() => Step::Beat,
            } {
                Step::Stop => break,
                Step::Expired => {
                    self.lose();
                    continue;
                }
                Step::Beat => {}
            }
            let sent = Instant::now();
            let deadline = self.valid_until;
            let outcome = tokio::select! {
                r = tokio::time::timeout(self.me.heartbeat, self.round(sent)) => Some(r),
                _ = until(deadline) => None,
            };
            match outcome {
                None => self.lose(),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    self.counters
                        .heartbeat_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cluster heartbeat failed");
                }
                Some(Err(_)) => {
                    self.counters
                        .heartbeat_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("cluster heartbeat timed out");
                }
            }
        }
        let held: Vec<String> = self.owned_tx.borrow().iter().cloned().collect();
        self.publish(HashMap::new(), None);
        for camera in held {
            let _ = self.store.release_lease(&camera, &self.me.instance).await;
        }
        let _ = self
            .store
            .leave(&self.me.instance, 3_600_000)
            .await
            .map_err(|e| tracing::warn!(error = %e, "leaving the cluster"));
        tracing::info!(instance = %self.me.instance, "cluster mode: left, cameras handed over");
    }

    /// The leases could not be renewed in time: judge nothing.
    fn lose(&mut self) {
        if self.valid_until.take().is_some() {
            tracing::error!(
                "cannot renew the camera leases: judging nothing until the database answers"
            );
            let held = self.owned_tx.borrow().as_ref().clone();
            if !held.is_empty() && self.stopped.is_none() {
                self.stopped = Some((Instant::now(), held));
            }
        }
        self.publish(HashMap::new(), None);
    }

    /// Cameras this instance stopped judging and renewed again, no one
    /// having taken them meanwhile: their unjudged span is recorded.
    async fn resumed(
        &mut self,
        held: &HashMap<String, i64>,
        now: Millis,
        sent: Instant,
    ) -> Result<(), StoreError> {
        let Some((since, stopped)) = &self.stopped else {
            return Ok(());
        };
        let back: Vec<String> = held
            .keys()
            .filter(|c| stopped.contains(*c))
            .cloned()
            .collect();
        let for_ms = sent.saturating_duration_since(*since).as_millis() as Millis;
        let spans = self
            .store
            .record_lapsed(&self.me.instance, &back, now, for_ms)
            .await?;
        self.stopped = None;
        for u in spans {
            let span_ms = (u.to_ms - u.from_ms).max(0) as u64;
            self.counters
                .unwatched_ms
                .fetch_add(span_ms, Ordering::Relaxed);
            tracing::warn!(camera = %u.camera, unwatched_s = span_ms as f64 / 1000.0, cause = u.cause.as_str(), "camera judged again");
        }
        Ok(())
    }

    /// One heartbeat (`sent` when it started): alive, renew, hand over, take.
    async fn round(&mut self, sent: Instant) -> Result<(), StoreError> {
        let lease_ms = self.me.lease.as_millis() as i64;
        let now = self
            .store
            .heartbeat(
                &self.me.instance,
                self.me.api_url.as_deref(),
                self.started_ms,
            )
            .await?;
        let live: Vec<String> = self
            .store
            .members()
            .await?
            .into_iter()
            .filter(|m| m.heartbeat_ms >= now - lease_ms)
            .map(|m| m.id)
            .collect();
        self.counters
            .live_members
            .store(live.len() as u64, Ordering::Relaxed);
        let cameras: Vec<String> = self
            .config
            .borrow()
            .cameras
            .iter()
            .map(|c| c.id.clone())
            .collect();
        let want = spread::spread(&cameras, &live);
        let me = self.me.instance.clone();
        let mine = |c: &str| want.get(c).is_some_and(|m| *m == me);
        let mut held = self.store.renew_leases(&self.me.instance, lease_ms).await?;
        // Stop judging first (the fence refuses commits), then let go.
        let give: Vec<String> = held.keys().filter(|c| !mine(c)).cloned().collect();
        for c in &give {
            held.remove(c);
        }
        // The cameras this instance judged before and renewed, not those it
        // takes below (a take records its own unjudged span).
        let renewed = held.clone();
        // Renewed: sure until the lease, less half a heartbeat of slack.
        let valid = sent + self.me.lease - self.me.heartbeat / 2;
        if !give.is_empty() {
            self.publish(held.clone(), Some(valid));
            for c in &give {
                self.store.release_lease(c, &self.me.instance).await?;
            }
            tracing::info!(cameras = ?give, "cameras handed over");
        }
        let take: Vec<&String> = cameras
            .iter()
            .filter(|c| mine(c) && !held.contains_key(*c))
            .collect();
        for c in take {
            if let Some(taken) = self
                .store
                .acquire_lease(c, &self.me.instance, lease_ms)
                .await?
            {
                self.counters.taken.fetch_add(1, Ordering::Relaxed);
                let epoch = taken.epoch;
                match taken.unwatched {
                    Some(u) => {
                        let span_ms = (u.to_ms - u.from_ms).max(0) as u64;
                        self.counters
                            .unwatched_ms
                            .fetch_add(span_ms, Ordering::Relaxed);
                        let unwatched_s = span_ms as f64 / 1000.0;
                        let cause = u.cause.as_str();
                        let previous = u.previous_owner.as_str();
                        if u.cause == UnwatchedCause::Silent {
                            // A warning: its frames went unjudged meanwhile.
                            tracing::warn!(camera = %c, epoch, previous, unwatched_s, cause, "camera taken");
                        } else {
                            tracing::info!(camera = %c, epoch, previous, unwatched_s, cause, "camera taken");
                        }
                    }
                    None => tracing::info!(camera = %c, epoch, "camera taken"),
                }
                held.insert(c.clone(), epoch);
            }
        }
        self.valid_until = Some(valid);
        self.publish(held.clone(), Some(valid));
        // Only now is judging sure to have resumed: a step above that fails
        // leaves the span open, to be recorded by the next round that gets
        // here (reporting it longer, never shorter).
        self.resumed(&renewed, now, sent).await?;
        Ok(())
    }

    /// Fence first, so a commit never runs ahead of the lease it needs.
    fn publish(&self, held: HashMap<String, i64>, valid_until: Option<Instant>) {
        let set: HashSet<String> = held.keys().cloned().collect();
        self.counters
            .held
            .store(set.len() as u64, Ordering::Relaxed);
        self.fence.set(held, valid_until);
        if **self.owned_tx.borrow() != set {
            self.owned_tx.send_replace(Arc::new(set));
        }
    }
}

enum Step {
    Stop,
    Expired,
    Beat,
}

/// Sleeps until `deadline`; forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// `config` reduced to the cameras in `owned`, their zones and those
/// zones' sensors: what this instance subscribes to and pulls.
pub fn held_part(config: &Config, owned: &HashSet<String>) -> Config {
    let mut c = config.clone();
    c.cameras.retain(|cam| owned.contains(&cam.id));
    c.zones.retain(|z| owned.contains(&z.camera));
    let zones: HashSet<&str> = c.zones.iter().map(|z| z.id.as_str()).collect();
    c.sensors.retain(|s| zones.contains(s.zone.as_str()));
    c
}

/// Follows `config` and `owned`: the held part of the latest config,
/// whenever either changes.
pub fn follow_held(
    mut config: watch::Receiver<Arc<Config>>,
    mut owned: watch::Receiver<Arc<HashSet<String>>>,
    stop: CancellationToken,
) -> watch::Receiver<Arc<Config>> {
    let first = held_part(&config.borrow_and_update(), &owned.borrow_and_update());
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = config.changed() => if r.is_err() { return },
                r = owned.changed() => if r.is_err() { return },
            }
            let next = held_part(&config.borrow_and_update(), &owned.borrow_and_update());
            tx.send_replace(Arc::new(next));
        }
    });
    rx
}
