//! A circuit breaker per provider, on each node: after `integrations.circuit_breaker_failures`
//! failed calls in a row (the provider did not answer, or answered with a server error), calls to
//! that provider stop for `integrations.circuit_breaker_open_secs` (*open*: callers get 503 at
//! once instead of waiting for a provider that is down). Then one call is let through
//! (*half-open*): its success closes the circuit, its failure opens it again. A provider that
//! answers, even to refuse a token (`invalid_grant`), is up. The state of each provider is the
//! gauge `integration_circuit_breaker_state` (0 closed, 1 half-open, 2 open).

use dartwing_core::Error;
use prometheus::IntGaugeVec;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The state of one provider's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// One trial call goes through; the others are refused.
    HalfOpen,
    /// Calls are refused.
    Open,
}

impl CircuitState {
    /// The gauge's value.
    pub fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Circuit {
    state: CircuitState,
    failures: u32,
    /// Open: since when. Half-open: when the trial call began.
    since: Instant,
}

impl Default for Circuit {
    fn default() -> Self {
        Self {
            state: CircuitState::Closed,
            failures: 0,
            since: Instant::now(),
        }
    }
}

/// The circuits of every provider on this node.
pub struct CircuitBreakers {
    /// Failed calls in a row that open a circuit; 0 never opens one.
    failures_to_open: u32,
    open_for: Duration,
    circuits: Mutex<HashMap<String, Circuit>>,
    gauge: Option<IntGaugeVec>,
}

impl CircuitBreakers {
    /// Circuits that open after `failures_to_open` failures in a row (0: never) for `open_for`,
    /// reporting their state on `gauge`.
    pub fn new(failures_to_open: u32, open_for: Duration, gauge: Option<IntGaugeVec>) -> Self {
        Self {
            failures_to_open,
            open_for,
            circuits: Mutex::new(HashMap::new()),
            gauge,
        }
    }

    fn set(&self, integration: &str, circuit: &mut Circuit, state: CircuitState) {
        circuit.state = state;
        circuit.since = Instant::now();
        if let Some(gauge) = &self.gauge {
            gauge.with_label_values(&[integration]).set(state.gauge());
        }
    }

    /// Whether a call to `integration`'s provider may go out now; a refusal is a 503 saying when
    /// to try again.
    pub fn permit(&self, integration: &str) -> Result<(), Error> {
        let mut circuits = self.circuits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let circuit = circuits.entry(integration.to_string()).or_default();
        let waited = circuit.since.elapsed();
        match circuit.state {
            CircuitState::Closed => Ok(()),
            // A trial that never reported back (its caller gave up) does not hold the circuit.
            CircuitState::Open | CircuitState::HalfOpen if waited >= self.open_for => {
                self.set(integration, circuit, CircuitState::HalfOpen);
                Ok(())
            }
            CircuitState::Open | CircuitState::HalfOpen => {
                let retry_in = self.open_for.saturating_sub(waited).as_secs().max(1);
                Err(Error::unavailable(format!(
                    "Calls to {integration} are paused after {} failures in a row (circuit open); try again in {retry_in} s",
                    circuit.failures
                ))
                .with_exc_type("IntegrationCircuitOpen"))
            }
        }
    }

    /// Records how a permitted call went: `provider_up` when the provider answered (whatever it
    /// said), false when it did not or answered with a server error.
    pub fn record(&self, integration: &str, provider_up: bool) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let circuit = circuits.entry(integration.to_string()).or_default();
        if provider_up {
            circuit.failures = 0;
            if circuit.state != CircuitState::Closed {
                tracing::info!(integration, "provider answers again; circuit closed");
                self.set(integration, circuit, CircuitState::Closed);
            }
            return;
        }
        circuit.failures = circuit.failures.saturating_add(1);
        let trips = circuit.state == CircuitState::HalfOpen
            || (self.failures_to_open > 0 && circuit.failures >= self.failures_to_open);
        if trips {
            tracing::warn!(
                integration,
                failures = circuit.failures,
                open_secs = self.open_for.as_secs(),
                "provider calls keep failing; circuit open"
            );
            self.set(integration, circuit, CircuitState::Open);
        }
    }

    /// The circuit's state now.
    pub fn state(&self, integration: &str) -> CircuitState {
        let circuits = self.circuits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        circuits.get(integration).map_or(CircuitState::Closed, |c| c.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_then_one_trial_decides() {
        let breakers = CircuitBreakers::new(3, Duration::from_millis(50), None);
        for _ in 0..2 {
            assert!(breakers.permit("google").is_ok());
            breakers.record("google", false);
        }
        // A success in between starts the count again.
        breakers.record("google", true);
        for _ in 0..3 {
            assert!(breakers.permit("google").is_ok());
            breakers.record("google", false);
        }
        assert_eq!(breakers.state("google"), CircuitState::Open);
        let refused = breakers.permit("google").expect_err("open");
        assert_eq!(refused.exc_type(), "IntegrationCircuitOpen");
        assert!(breakers.permit("slack").is_ok(), "one circuit per provider");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breakers.permit("google").is_ok(), "the trial call");
        assert_eq!(breakers.state("google"), CircuitState::HalfOpen);
        assert!(breakers.permit("google").is_err(), "only one trial at a time");
        breakers.record("google", false);
        assert_eq!(
            breakers.state("google"),
            CircuitState::Open,
            "a failed trial opens it again"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(breakers.permit("google").is_ok());
        breakers.record("google", true);
        assert_eq!(breakers.state("google"), CircuitState::Closed);
        assert!(breakers.permit("google").is_ok());
    }

    #[test]
    fn zero_failures_to_open_never_opens() {
        let breakers = CircuitBreakers::new(0, Duration::from_secs(30), None);
        for _ in 0..100 {
            assert!(breakers.permit("google").is_ok());
            breakers.record("google", false);
        }
        assert_eq!(breakers.state("google"), CircuitState::Closed);
    }
}
