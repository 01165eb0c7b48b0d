// Package pacing closes the loop between a site's backlog and the load its clients bring: it
// sets the rate at which new clients are admitted (a new client's first full scan is the storm
// of a rollout), stretches the interval clients batch their state messages for, and says when
// the backlog is low enough for the next phase of a phased deployment to be released.
//
// It owns the control law (Controller), the signals' windows and the deployment phases'
// membership and release rule (phases.go). It must not read the store or Kafka itself: the
// site's wiring reads the signals (projector progress, store inserts, ingest refusals, the
// links up to the top and the chain above, published by the parent) and hands them to Step;
// ingest asks the controller for the enrolment rate and the report interval.
//
// # Signals
//
// Every signal is a Reading: a value, the value taken as "at target", and when it was read.
// Its pressure is value/target, taken as its minimum over Config.Window (CoDel's idea: a burst
// that drains within the window never moves the rate; a backlog that stands for the whole
// window does). The controller acts on the worst pressure:
//
//   - wait: the projector's records behind divided by its fold rate in records a second — the
//     time a report accepted now will wait (Little's law). It steers.
//   - lag: the age of the oldest accepted, unfolded report (now − the site's watermark). It
//     guards: it counts once over target, but does not steer — it trails the queue by as long
//     as the queue is, and a loop steering on it oscillates (the queue simulation showed 444
//     turns of the rate an hour steering on it, against 3 on the wait).
//   - insert: the store's mean insert latency over the interval, and shedding: the share of
//     report requests ingest refused as overloaded (503). Both guard: a large batch's insert
//     takes seconds and a few 503s are ingest doing its job; steered on, a 3 s insert
//     (pressure 0.3, over the setpoint) would hold the rate down while the queue is short.
//   - link A->B: the freshness of the site's own link to its parent. It guards, like lag: it
//     is an age with a floor of its own (the replicator's interval, the parent's commit) that
//     trails what it measures; steered on, a link 8 s fresh under load held a 3-primary wave
//     in the dead band, 18 % slower than unpaced, while the central site kept up. A failed
//     link counts as over target at once.
//   - above P: the pressure the parent published for its own chain up to the top (its queues
//     steer; its guards count once over target). A stale parent slows its children; the
//     central site limits the whole tree.
//
// A signal not read for Config.MaxStaleness is missing, and missing data counts as bad data:
// the controller pauses (admits no new client) rather than assume all is well, and resumes at
// half its rate once every signal is fresh again.
//
// # The control law
//
// PI control of the logarithm of the rate, on the error e = setpoint − pressure:
//
//	d ln(rate) = Gain·e·dt + Damping·de
//
// Why PI, and why on the log: a queue is an integrator — its backlog grows with the
// difference between what arrives and what is folded — and its gain (seconds of backlog per
// admitted client) depends on the size of a first scan and the site's speed, which differ by
// orders of magnitude between sites and over a Patch Tuesday. In the log domain the loop gain
// near equilibrium is the share of the site's capacity the admitted clients use (at most 1),
// whatever those sizes are, so one tuning holds from a laboratory to a 100,000-client site.
// The integral term removes the steady error (the backlog settles at the setpoint, so the
// projector never idles while clients wait and a rollout completes in about the time its
// capacity allows); the damping term answers a rising backlog before the integral has.
// AIMD was the alternative: its saw-tooth averages ¾ of capacity with a halving on each
// overshoot (a rollout 1.33× its capacity's time) and turns direction on every tooth.
//
// The shaping keeps the rate calm: a dead band (Deadband) around the setpoint where nothing
// changes, and beyond it errors smaller than Curve counted by their square, so the noise of a
// projector that folds in batches barely moves the rate while a real backlog moves it at full
// gain. The rate rises at most MaxGrowth a second (5 %) and falls as fast as the law says: up
// slowly, down at once — the damping term would otherwise multiply the rate many times over
// the moment a backlog drains, and a queue shows an overshoot only a window later. While
// there is no backlog at all (the steering signals as read, before their window, under half
// the dead band), there is nothing to steer by, and the rate grows at that cap: a slow start
// after a start and a quick recovery once a slowed site has drained. The rate grows only while
// someone waits (an enrolment refused since the last step, or refused clients told to come
// back): a rate nobody uses says nothing about capacity, and would let the next wave in at
// once. The rate stays within [MinRate, MaxRate] and starts at StartRate.
//
// The setpoint is 0.25 of the target (7.5 s of wait at 30 s): the wait is a mean, and the age
// of the oldest report — what the target bounds — runs about twice it when a site folds its
// partitions unevenly, and more when the store slows for a while (its merges): a
// 100,000-client wave on this machine steered to a 9 s wait peaked at 44 s at the 99th
// percentile of the visible delay, when the projector's throughput halved for half a minute.
//
// The tuning (Gain 0.08/s, Damping 3, Deadband 0.05, Curve 0.3, MaxGrowth 0.05, Window 5 s,
// StartRate 50/s) comes from a scan of the queue simulation in sim_test.go: a 100,000-client
// wave on a site folding 100,000 messages a second completes in 1.08× the time its capacity
// allows with the lag peaking at 10 s; a background load that steps by 40 % of capacity keeps
// the lag under 16 s with 2 turns of the rate in the hour; a ±30 % noisy, batched projector
// gives 8 turns of 10 % in an hour (up to 50 with a linear error or a damping of 1); the rate
// recovers within about 40 s of a slowed store recovering; missing data pauses within
// MaxStaleness. Steering on the age of the oldest record instead of the wait, every tuning
// tried oscillated. A slow start that doubled the rate every two windows overshot to 29 s.
//
// # Report cadence
//
// The report interval clients are told is Config.ReportInterval (ConfigMgr's 15 minutes)
// stretched in proportion to how far the pressure is above the setpoint, up to MaxStretch at
// the target (and while paused for missing data). It rises at once and relaxes with RelaxTime.
//
// # Administrators
//
// Pause stops new enrolments; SetRate fixes the rate; Resume returns to automatic control.
package pacing
