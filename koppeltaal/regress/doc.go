// Package regress is the Koppeltaal 1.3 Regression Test: a black-box conformance suite that an operator runs
// against any Koppeltaal 1.3 server (Koppelpoort or another) to prove that the connectors and modules already
// deployed work against it unchanged (`koppelpoort regress <base-url>`).
//
// The suite only speaks HTTP to the target. It asserts what clients read, as CLIENTS.md lists it (fields,
// content types, status codes, exact error texts, Content-Location, string-increasing versions, redirects and
// their query parameters), the SPEC.md rules behind them (endpoints, the §7 worked example, the §5 claim/ack
// state machine, SSO, notifications), and that hostile input is refused and nothing of it is stored.
//
// A Case is data (an id, a title, the CLIENTS.md/SPEC.md reference it checks, the formats it runs in, the
// optional capabilities it needs) plus a function that drives the target through a T. Every case creates its
// own uniquely named data (random suffixes in resource URLs and identifiers), so the suite runs again and again
// against a long-lived server. Run runs a selection of cases and returns a Report (text, JUnit XML, JSON).
package regress
