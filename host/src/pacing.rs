//! Intake pacing: delivery keeps its share of the CPU under any intake load.
//!
//! Accepting a webhook is cheaper than delivering it, so when senders push
//! more than the machine can both accept and deliver, intake alone would take
//! the CPU and the backlog would grow for as long as the load lasts. While the
//! machine is saturated *and* the workers have jobs waiting, intake therefore
//! admits the jobs of new webhooks only against delivered ones: at most
//! `1 / min_delivered_ratio` per delivered job. A webhook without credit waits
//! (its answer comes later, which slows a sender down: Recoco's sender waits
//! without a timeout) for at most `max_wait`, and is then accepted anyway:
//! pacing never refuses or loses a webhook, it only delays the answer.
//!
//! Why both conditions: a backlog alone can mean a slow third party (workers
//! waiting on the network, CPU idle), where slowing intake would gain nothing;
//! a busy CPU alone can be intake with nothing left to deliver.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::IntakeConfig;

/// How long an observation (jobs waiting, CPU busy) holds.
const WINDOW: Duration = Duration::from_millis(100);
/// Pacing starts above this busy share of all cores (the pipeline's waits
/// leave some idle time even under an overload)...
const BUSY_SHARE: f64 = 0.75;
/// ...and goes on down to this one: pacing itself frees CPU (delivery alone
/// does not fill the cores), which must not switch it off at once.
const STILL_BUSY_SHARE: f64 = 0.5;
/// Most jobs intake may admit ahead of deliveries once pacing starts.
const MAX_CREDIT: f64 = 64.0;

/// Reads the machine's busy share of the CPU since the last call (`None` when
/// unknown: pacing then goes by the backlog alone).
pub type CpuProbe = Box<dyn FnMut() -> Option<f64> + Send>;

pub struct Pacing {
    /// Jobs admitted per delivered job while pacing; 0 = pacing off.
    per_delivered: f64,
    max_wait: Duration,
    /// How long an observation holds ([`WINDOW`]; longer in tests).
    window: Duration,
    state: Mutex<State>,
    credit_added: Notify,
}

struct State {
    /// When a worker last found another job waiting right after finishing one.
    backlog_seen: Option<Instant>,
    cpu: CpuProbe,
    cpu_busy: bool,
    cpu_read: Option<Instant>,
    credit: f64,
}

/// What [`Pacing::admit`] did, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not pacing: admitted at once.
    Free,
    /// Admitted against delivered jobs, after this wait.
    Paced(Duration),
    /// Waited `max_wait` (this long) without credit: admitted anyway.
    Overdue(Duration),
}

impl Pacing {
    /// Pacing as `[intake]` configures it, reading the CPU from `/proc/stat`.
    pub fn from_config(config: &IntakeConfig) -> Self {
        Self::configured(config, Box::new(ProcStat::default().into_probe()))
    }

    /// Pacing as `[intake]` configures it, with this CPU probe.
    pub fn configured(config: &IntakeConfig, cpu: CpuProbe) -> Self {
        Self::new(
            config.pacing_min_delivered_ratio,
            config.pacing_max_wait,
            cpu,
        )
    }

    pub fn new(min_delivered_ratio: f64, max_wait: Duration, cpu: CpuProbe) -> Self {
        let per_delivered = if min_delivered_ratio > 0.0 {
            1.0 / min_delivered_ratio
        } else {
            0.0
        };
        Self {
            per_delivered,
            max_wait,
            window: WINDOW,
            state: Mutex::new(State {
                backlog_seen: None,
                cpu,
                cpu_busy: false,
                cpu_read: None,
                credit: MAX_CREDIT,
            }),
            credit_added: Notify::new(),
        }
    }

    /// The same, with observations holding for `window`.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// A worker finished a job; `more_waiting`: its next claim found one.
    pub fn delivered(&self, more_waiting: bool) {
        if self.per_delivered == 0.0 {
            return;
        }
        let mut state = self.state.lock();
        state.credit = (state.credit + self.per_delivered).min(MAX_CREDIT);
        // A worker finding nothing proves little (its connection may be at
        // its concurrency limit while jobs wait): the observation expires.
        if more_waiting {
            state.backlog_seen = Some(Instant::now());
        }
        drop(state);
        // One waiter at a time: a delivery earns about one admission, and
        // waking every waiting webhook per delivery would be a herd on the
        // hot path. A waiter leaving credit behind wakes the next.
        self.credit_added.notify_one();
    }

    /// Waits until intake may store a webhook creating `jobs` jobs.
    pub async fn admit(&self, jobs: usize) -> Admission {
        if self.per_delivered == 0.0 || jobs == 0 {
            return Admission::Free;
        }
        let started = Instant::now();
        let deadline = started + self.max_wait;
        loop {
            // A delivery between the look at the credit and the wait is not
            // missed: `notify_one` then leaves a permit for this wait.
            let added = self.credit_added.notified();
            {
                let mut state = self.state.lock();
                if !state.pacing(self.window) {
                    return Admission::Free;
                }
                if state.credit >= 1.0 {
                    state.credit -= jobs as f64;
                    if state.credit >= 1.0 {
                        self.credit_added.notify_one();
                    }
                    return Admission::Paced(started.elapsed());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Admission::Overdue(started.elapsed());
            }
            // Woken by a delivery, or when the observations may have expired.
            let _ = tokio::time::timeout((deadline - now).min(self.window), added).await;
        }
    }
}

impl State {
    fn pacing(&mut self, window: Duration) -> bool {
        let now = Instant::now();
        let backlog = self
            .backlog_seen
            .is_some_and(|seen| now.duration_since(seen) < window);
        if !backlog {
            return false;
        }
        if self
            .cpu_read
            .is_none_or(|read| now.duration_since(read) >= window)
        {
            self.cpu_read = Some(now);
            let threshold = if self.cpu_busy {
                STILL_BUSY_SHARE
            } else {
                BUSY_SHARE
            };
            self.cpu_busy = (self.cpu)().is_none_or(|busy| busy >= threshold);
        }
        self.cpu_busy
    }
}

/// The machine's busy share from the `cpu` line of `/proc/stat`, between reads.
#[derive(Default)]
struct ProcStat {
    last: Option<(u64, u64)>,
}

impl ProcStat {
    fn into_probe(mut self) -> impl FnMut() -> Option<f64> + Send {
        move || self.read()
    }

    fn read(&mut self) -> Option<f64> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let (idle, total) = parse_cpu_line(text.lines().next()?)?;
        let share = self.last.and_then(|(last_idle, last_total)| {
            let spent = total.checked_sub(last_total)?;
            (spent > 0).then(|| 1.0 - (idle.saturating_sub(last_idle)) as f64 / spent as f64)
        });
        self.last = Some((idle, total));
        share
    }
}

/// (idle + iowait, total) jiffies of the aggregate `cpu` line.
fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    // guest times are already counted in user and nice.
    let total = values.iter().take(8).sum();
    Some((idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Observations hold 10 s unless a test says otherwise, so a slow
    /// machine cannot end pacing in the middle of a test.
    fn pacing(ratio: f64, max_wait: Duration, busy: Arc<AtomicBool>) -> Pacing {
        Pacing::new(
            ratio,
            max_wait,
            Box::new(move || {
                Some(if busy.load(Ordering::Relaxed) {
                    0.8
                } else {
                    0.3
                })
            }),
        )
        .with_window(Duration::from_secs(10))
    }

    /// Spends the credit given at start.
    async fn spend_start_credit(p: &Pacing) {
        for _ in 0..MAX_CREDIT as usize {
            assert!(matches!(p.admit(1).await, Admission::Paced(_)));
        }
    }

    #[tokio::test]
    async fn a_saturated_machine_with_a_backlog_admits_only_against_deliveries() {
        let p = Arc::new(pacing(0.8, Duration::from_secs(5), Arc::new(true.into())));
        p.delivered(true);
        spend_start_credit(&p).await;
        // 8 deliveries at 0.8 earn 10 admissions, then intake waits.
        let admitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiting = {
            let (p, admitted) = (p.clone(), admitted.clone());
            tokio::spawn(async move {
                for _ in 0..11 {
                    p.admit(1).await;
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(admitted.load(Ordering::SeqCst), 0, "no credit yet");
        for _ in 0..8 {
            p.delivered(true);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(admitted.load(Ordering::SeqCst), 10);
        p.delivered(true);
        waiting.await.unwrap();
        assert_eq!(admitted.load(Ordering::SeqCst), 11);
    }

    #[tokio::test]
    async fn credit_of_one_delivery_admits_every_webhook_it_covers() {
        // At 0.25 one delivery earns 4 admissions: the 4 waiting webhooks all
        // go, not only the one the delivery woke.
        let p = Arc::new(pacing(0.25, Duration::from_secs(5), Arc::new(true.into())));
        p.delivered(true);
        for _ in 0..MAX_CREDIT as usize {
            assert!(matches!(p.admit(1).await, Admission::Paced(_)));
        }
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.admit(1).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.delivered(true);
        for w in waiting {
            let admission = tokio::time::timeout(Duration::from_secs(2), w)
                .await
                .expect("admitted by the delivery's credit, before max_wait")
                .unwrap();
            assert!(matches!(admission, Admission::Paced(_)), "{admission:?}");
        }
    }

    #[tokio::test]
    async fn no_backlog_or_an_idle_cpu_or_pacing_off_admits_at_once() {
        let busy = Arc::new(AtomicBool::new(true));
        let window = Duration::from_millis(50);
        let p = pacing(0.8, Duration::from_secs(5), busy.clone()).with_window(window);
        // Busy CPU, but no worker has seen a backlog.
        for _ in 0..1000 {
            assert_eq!(p.admit(1).await, Admission::Free);
        }
        // Deliveries that found nothing waiting.
        p.delivered(false);
        assert_eq!(p.admit(1).await, Admission::Free);
        // Backlog seen, but the CPU is idle (workers wait on a slow target).
        busy.store(false, Ordering::Relaxed);
        p.delivered(true);
        tokio::time::sleep(window).await;
        p.delivered(true);
        assert_eq!(p.admit(1).await, Admission::Free);
        // The backlog observation expires.
        busy.store(true, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        assert_eq!(p.admit(1).await, Admission::Free);

        let off = pacing(0.0, Duration::from_secs(5), Arc::new(true.into()));
        off.delivered(true);
        for _ in 0..1000 {
            assert_eq!(off.admit(1).await, Admission::Free);
        }
    }

    #[tokio::test]
    async fn a_webhook_waits_at_most_max_wait_then_is_admitted() {
        let p = pacing(0.8, Duration::from_millis(150), Arc::new(true.into()));
        p.delivered(true);
        spend_start_credit(&p).await;
        let Admission::Overdue(waited) = p.admit(1).await else {
            panic!("admitted with credit");
        };
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn pacing_starts_on_a_saturated_cpu_and_lasts_until_it_is_clearly_idle() {
        let share = Arc::new(Mutex::new(0.0));
        let window = Duration::from_millis(30);
        let probe = {
            let share = share.clone();
            Box::new(move || Some(*share.lock()))
        };
        let p = Pacing::new(0.8, Duration::from_secs(5), probe).with_window(window);
        // Each step: a fresh CPU reading and a fresh backlog observation.
        let step = |busy: f64| {
            *share.lock() = busy;
            let p = &p;
            async move {
                tokio::time::sleep(window).await;
                p.delivered(true);
                p.admit(1).await
            }
        };
        assert_eq!(step(0.6).await, Admission::Free, "not yet saturated");
        assert!(matches!(step(0.8).await, Admission::Paced(_)));
        // Pacing frees CPU; a share below the start threshold keeps it on.
        assert!(matches!(step(0.6).await, Admission::Paced(_)));
        assert_eq!(step(0.4).await, Admission::Free, "clearly idle");
        assert_eq!(step(0.6).await, Admission::Free);
    }

    #[tokio::test]
    async fn the_intake_settings_set_the_ratio_and_the_longest_wait() {
        let text = "[intake]\npacing_min_delivered_ratio = 0.5\npacing_max_wait = \"120ms\"\n";
        let config = crate::config::Config::from_parts(text, &[], &Default::default()).unwrap();
        let p = Pacing::configured(&config.intake, Box::new(|| Some(1.0)))
            .with_window(Duration::from_secs(10));
        p.delivered(true);
        spend_start_credit(&p).await;
        // At 0.5, one delivery earns two admissions.
        p.delivered(true);
        for _ in 0..2 {
            assert!(matches!(p.admit(1).await, Admission::Paced(_)));
        }
        let Admission::Overdue(waited) = p.admit(1).await else {
            panic!("a third admission without a delivery");
        };
        assert!(waited >= Duration::from_millis(120), "{waited:?}");
        assert!(waited < Duration::from_millis(1000), "{waited:?}");
    }

    #[test]
    fn the_cpu_line_of_proc_stat_is_read() {
        let line = "cpu  100 5 50 800 40 3 2 0 0 0";
        assert_eq!(parse_cpu_line(line), Some((840, 1000)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4"), None);
        let mut stat = ProcStat::default();
        assert_eq!(stat.read(), None, "the first read has nothing to compare");
        std::thread::sleep(Duration::from_millis(60));
        let share = stat.read().expect("jiffies passed since the first read");
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
}
