//! A run of reported epochs sent as one `ReceivedThrough` (processing time after the clock
//! skipped epochs) gives exactly the transitions of one `Received` per epoch, at 1 and 3
//! workers (issue 26 point 1: one observation per skipped epoch cost memory and time in the
//! square of the workers).

use std::sync::{Arc, Mutex};

use hygroflow_dataflows::alerts::{DeviceRule, RuleBook};
use hygroflow_dataflows::{build, AlertRules, Distinct, Epoch, Observation, Transition};
use timely::dataflow::operators::Inspect;

/// Sensors of one device, and a silence of 3 epochs: they read at epoch 1, go silent at 4,
/// one of them reads again at 12 (back), and the other is still silent at the end.
fn run(workers: usize, as_a_run: bool) -> Vec<(Epoch, String, String)> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let sink = Arc::clone(&sink);
        let rules = AlertRules {
            rule_for: Arc::new(|_| DeviceRule {
                low: None,
                high: None,
                hysteresis: 0,
                rate_per_hour: None,
                window: 1,
                silence: 3,
                silence_ms: 3_000,
                retire: None,
            }),
            hour: 3600,
            book: RuleBook::default(),
        };
        let mut inputs = worker.dataflow::<Epoch, _, _>(|scope| {
            let (inputs, _, alerts) = build(scope, (Distinct::Cumulative, Some(rules)));
            alerts.inspect(move |t: &Transition| {
                let line = (t.epoch, t.kind.name().to_owned(), format!("{:?}", t.state));
                sink.lock().expect("sink").push(line);
            });
            inputs
        });
        let seen = |guids: &[&str]| Observation::Seen {
            device: "MRI1".into(),
            guids: guids.iter().map(|g| g.to_string()).collect(),
        };
        let readings = Observation::Readings {
            device: "MRI1".into(),
            sum_micro: 50_000_000,
            count: 1,
        };
        // Worker 0 tells the epochs, as the writer does in processing time.
        if index == 0 {
            inputs.feed.update_at(seen(&["a", "b"]), 1, 1);
            inputs.feed.update_at(readings.clone(), 1, 1);
            inputs.feed.update_at(Observation::Received, 1, 1);
            if as_a_run {
                inputs
                    .feed
                    .update_at(Observation::ReceivedThrough { through: 11 }, 2, 1);
            } else {
                for epoch in 2..=11 {
                    inputs.feed.update_at(Observation::Received, epoch, 1);
                }
            }
            inputs.feed.update_at(seen(&["a"]), 12, 1);
            inputs.feed.update_at(readings, 12, 1);
            inputs.feed.update_at(Observation::Received, 12, 1);
            for epoch in 13..=20 {
                inputs.feed.update_at(Observation::Received, epoch, 1);
            }
        }
        inputs.advance_to(21);
        inputs.flush();
        inputs.close();
    })
    .expect("timely runs");
    let mut lines = out.lock().expect("out").clone();
    lines.sort();
    lines
}

#[test]
fn a_run_of_reported_epochs_gives_the_transitions_of_each_epoch_reported() {
    let each = run(1, false);
    assert!(
        each.iter().any(|(e, kind, _)| *e == 4 && kind == "silent"),
        "the sensors fall silent during the run: {each:?}"
    );
    for workers in [1, 3] {
        assert_eq!(run(workers, true), each, "{workers} workers");
    }
}
