//! What an on-sale measured and found, and its text for a person.

use serde::Serialize;

use super::config::{OnSale, Waiting};
use crate::check::{Replayed, Violation};
use crate::stats::{Counts, LatencySummary};

/// What the on-sale measured and found.
#[derive(Debug, Clone, Serialize)]
pub struct OnSaleReport {
    pub settings: OnSale,
    pub event_ids: Vec<String>,
    /// From the first POST to the last, and to the last result.
    pub send_secs: f64,
    pub total_secs: f64,
    pub posts: u64,
    pub accepted: u64,
    pub accepted_per_sec: f64,
    pub finished: u64,
    pub finished_per_sec: f64,
    /// Outcome counts: `hold.post.<status>` (the POST's answer), `hold.job.<code>` (the job's
    /// result), likewise `reserve.*`, and `job.failed` / `job.unfinished` / `job.lost`.
    pub counts: Counts,
    /// POST answered 202.
    pub latency_202: LatencySummary,
    /// From the 202 to the job's result, as the client saw it.
    pub accept_to_result: LatencySummary,
    /// `completedAt − createdAt` of each finished job (Redis's clock, ms resolution).
    pub accept_to_result_server: LatencySummary,
    /// POSTs that went out later than the target rate wanted (the generator fell behind).
    pub late_posts: u64,
    pub seats_read_back: usize,
    /// How much of the run the replay against the model covered (its violations are among
    /// `violations`).
    pub model: Replayed,
    pub violations: Vec<Violation>,
}

impl OnSaleReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let rate = s
            .rate
            .map_or("flat out".to_owned(), |r| format!("{r:.0} POSTs/s"));
        out.push_str(&format!(
            "on-sale: {} events x {} seats, {} users, up to {} holds each{}, reserve {:.0}%, {} users at once, {rate}, {}\n",
            self.event_ids.len(),
            s.seats,
            s.users,
            s.holds_per_user,
            s.hot_seats.map_or(String::new(), |h| format!(" on {h} hot seats")),
            s.reserve_ratio * 100.0,
            s.connections,
            match s.waiting {
                Waiting::Wait => "?wait".to_owned(),
                Waiting::Poll(iv) => format!("polling every {iv:?}"),
            }
        ));
        out.push_str(&format!(
            "  sent {} POSTs in {:.2} s; all results in after {:.2} s\n",
            self.posts, self.send_secs, self.total_secs
        ));
        out.push_str(&format!(
            "  accepted (202): {:>9}  {:>10.0} /s\n",
            self.accepted, self.accepted_per_sec
        ));
        out.push_str(&format!(
            "  finished jobs:  {:>9}  {:>10.0} /s\n",
            self.finished, self.finished_per_sec
        ));
        out.push_str("  outcomes:\n");
        for (kind, n) in &self.counts.0 {
            out.push_str(&format!("    {kind:<22} {n:>9}\n"));
        }
        out.push_str(&format!(
            "  latency of the 202:        {}\n",
            self.latency_202.line()
        ));
        out.push_str(&format!(
            "  accept to result (client): {}\n",
            self.accept_to_result.line()
        ));
        out.push_str(&format!(
            "  accept to result (server): {}\n",
            self.accept_to_result_server.line()
        ));
        if self.late_posts > 0 {
            out.push_str(&format!(
                "  {} POSTs went out late: the generator could not keep the target rate\n",
                self.late_posts
            ));
        }
        out.push_str(&format!(
            "  model: {} of {} accepted jobs replayed, the final state of {} of {} events compared\n",
            self.model.jobs,
            self.accepted,
            self.model.states,
            self.event_ids.len()
        ));
        for cut in self.model.cut.iter().take(5) {
            out.push_str(&format!("    {cut}\n"));
        }
        if self.violations.is_empty() {
            out.push_str(&format!(
                "  invariants: OK (no seat held or reserved by two users, nobody over the cap of {}, every accepted job finished; {} seats read back)\n",
                s.cap, self.seats_read_back
            ));
        } else {
            out.push_str(&format!(
                "  invariants: {} VIOLATION(S)\n",
                self.violations.len()
            ));
            for v in self.violations.iter().take(20) {
                out.push_str(&format!("    [{}] {}\n", v.rule, v.detail));
            }
            if self.violations.len() > 20 {
                out.push_str(&format!("    … and {} more\n", self.violations.len() - 20));
            }
        }
        out
    }
}
