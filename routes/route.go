// Package routes is the route model: it loads route files (YAML) strictly, compiles their rules and
// transforms once, checks adapter settings against each adapter's spec, and turns one inbound record into
// deliveries, a drop or a dead letter. The runtime (package routes/runtime) runs loaded routes.
package routes

import (
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/rules"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// Route is one loaded, compiled route file.
type Route struct {
	Name        string
	Description string
	// File is the route file's path, Dir its directory (adapters resolve relative paths against it).
	File, Dir string
	// Revision identifies the route file's content (a hash): logs, deliveries and dead letters carry it.
	Revision string
	Input    Component
	Outputs  []Component
	Rules    []*rules.Rule
	// Transforms by name.
	Transforms map[string]*Transform
	// Key computes the record key; nil keeps the key the inbound adapter gave.
	Key *transforms.Program
	// Retry is the outbound retry policy.
	Retry RetryPolicy
	// FailingAfter is how long an output may keep failing before /readyz reports the route (health:
	// failing_after; default DefaultFailingAfter).
	FailingAfter time.Duration
	// SkipUnchanged turns on change detection (skip_unchanged): a delivery whose output, record key and
	// content hash (Delivery.ContentHash) equal the last one accepted for that output is not made again.
	SkipUnchanged bool
	// Warnings found while loading (lint prints them).
	Warnings strictyaml.Diagnostics

	engine *transforms.Engine
}

// Component is an adapter instance declared in a route: decoded and validated, not yet provisioned.
type Component struct {
	// Name is the output's name in the route (the input is called "input").
	Name         string
	Registration adapters.Registration
	// Adapter is the decoded adapter (implements adapters.Inbound or adapters.Outbound).
	Adapter      any
	Line, Column int
}

// Transform is a named field mapping compiled once.
type Transform struct {
	Name string
	// Fields is an object of expressions (nil: the record's fields pass unchanged).
	Fields       *Value
	Koppeltaal   *KoppeltaalTemplate
	Line, Column int
}

// Value is a tree of compiled expressions: an expression, an object of values or a list of values.
type Value struct {
	Expr   *transforms.Program
	Keys   []string
	Object map[string]*Value
	List   []*Value
}

// KoppeltaalTemplate declares a Koppeltaal message: the gateway builds the DSTU1 bundle from it.
type KoppeltaalTemplate struct {
	Event     string
	Patient   *transforms.Program
	Resources []ResourceTemplate
}

// ResourceTemplate is one resource of a Koppeltaal message template.
type ResourceTemplate struct {
	Type   string
	ID     *transforms.Program
	Fields *Value
}

// RetryPolicy says how often a transient outbound failure is retried before the record is dead-lettered.
type RetryPolicy struct {
	MaxAttempts int
	// Backoff base and cap, doubled per attempt.
	Backoff, MaxBackoff time.Duration
}

// Total is how long a delivery that keeps failing is retried before it becomes a dead letter: the sum of
// the waits between its attempts.
func (p RetryPolicy) Total() time.Duration {
	var d time.Duration
	for n := 1; n < p.MaxAttempts; n++ {
		d += adapters.Backoff(n, p.Backoff, p.MaxBackoff)
	}
	return d
}
