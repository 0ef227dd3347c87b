// Package loadtest is the instrument behind `koppelpoort load`: it drives any
// Koppeltaal 1.3 server over real HTTP with a realistic mix of practitioner
// portals (Patients and CarePlans, versioned updates with 409 handling),
// patient/related-person portals and modules (claim, UpdateCarePlanActivityStatus,
// acknowledge), measures throughput and latency per operation in bounded
// log-bucketed histograms, checks afterwards that every accepted message reached
// every subscriber exactly once and that every acknowledgement stuck, and
// compares the result with the raw commit rate of the store on the same machine.
//
// Run drives a target; StartSelf starts a Koppelpoort server as a child process
// on a fresh SQLite file or PostgreSQL database and provisions its domains,
// after WritePrefill (Scenario.Prefill) has written waiting messages straight
// into that database when the run wants deep queues from the start.
package loadtest
