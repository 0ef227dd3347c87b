// Package rules holds a route's declarative rules: an ordered list of conditions (expr) with an action each —
// drop, dead-letter, or send through a transform to outputs — and the evaluation that picks what happens to a
// record.
package rules

import (
	"fmt"
	"strings"

	"github.com/koppelpoort/koppelpoort/transforms"
)

// Action is what a matching rule does.
type Action int

const (
	// Route sends the record through a transform (or unchanged) to outputs.
	Route Action = iota
	// Drop discards the record on purpose (counted, logged with the reason).
	Drop
	// DeadLetter parks the record with a reason for a person to look at and replay.
	DeadLetter
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case DeadLetter:
		return "dead_letter"
	}
	return "route"
}

// Rule is one compiled rule.
type Rule struct {
	// Line and Column locate the rule in the route file, for messages.
	Line, Column int
	// HasCondition is set when the rule declares `when` (even one that failed to compile), so lint does not
	// take it for an unconditional rule.
	HasCondition bool
	// When is the condition; nil matches every record.
	When   *transforms.Program
	Action Action
	// Reason explains a drop or dead letter; it may interpolate {{ expressions }}.
	Reason *Template
	// Transform names the transform to apply (empty: the record's fields as they are).
	Transform string
	// Outputs names the outputs to deliver to (empty: all outputs).
	Outputs []string
	// Continue lets evaluation go on after this rule matched (fan-out to several branches).
	Continue bool
}

// Terminal reports whether a match of this rule ends evaluation.
func (r *Rule) Terminal() bool { return r.Action != Route || !r.Continue }

// Unconditional reports whether the rule matches every record.
func (r *Rule) Unconditional() bool {
	if !r.HasCondition {
		return true
	}
	return r.When != nil && strings.TrimSpace(r.When.Source()) == "true"
}

// Decision is the outcome for one record: either one drop/dead letter, or one or more route branches.
type Decision struct {
	Action Action
	Reason string
	// Branches are the matched routing rules (Action Route only).
	Branches []*Rule
	// Rule is the rule that decided a drop or dead letter (nil when no rule matched).
	Rule *Rule
}

// NoMatchReason is the drop reason when rules exist and none matched.
const NoMatchReason = "no rule matched"

// Evaluate runs the rules in order for one record. With no rules at all, the record is routed unchanged to
// every output. An error (a condition that fails to evaluate) means the record must be dead-lettered.
func Evaluate(rs []*Rule, env transforms.Env) (Decision, error) {
	if len(rs) == 0 {
		return Decision{Action: Route, Branches: []*Rule{{}}}, nil
	}
	var d Decision
	for _, r := range rs {
		if r.When != nil {
			ok, err := r.When.EvalBool(env)
			if err != nil {
				return Decision{}, fmt.Errorf("rule at line %d: %w", r.Line, err)
			}
			if !ok {
				continue
			}
		}
		if r.Action != Route {
			if len(d.Branches) > 0 {
				// An earlier continuing branch already matched; a later drop/dead letter still wins, so a
				// record is never half-delivered by a route that also wanted it gone.
				d.Branches = nil
			}
			reason, err := r.Reason.Render(env)
			if err != nil {
				return Decision{}, fmt.Errorf("rule at line %d: reason: %w", r.Line, err)
			}
			return Decision{Action: r.Action, Reason: reason, Rule: r}, nil
		}
		d.Branches = append(d.Branches, r)
		if !r.Continue {
			break
		}
	}
	if len(d.Branches) == 0 {
		return Decision{Action: Drop, Reason: NoMatchReason}, nil
	}
	d.Action = Route
	return d, nil
}

// Unreachable returns the rules that can never match because an earlier unconditional terminal rule
// always ends evaluation.
func Unreachable(rs []*Rule) []*Rule {
	for i, r := range rs {
		if r.Unconditional() && r.Terminal() {
			return rs[i+1:]
		}
	}
	return nil
}
