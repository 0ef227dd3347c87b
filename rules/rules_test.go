package rules_test

import (
	"testing"

	"github.com/koppelpoort/koppelpoort/rules"
	"github.com/koppelpoort/koppelpoort/transforms"
)

func TestEvaluate(t *testing.T) {
	e, err := transforms.NewEngine(transforms.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cond := func(src string) *transforms.Program {
		p, err := e.Compile(src, transforms.Bool)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	reason := func(src string) *rules.Template {
		tp, err := rules.CompileTemplate(e, src)
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	rs := []*rules.Rule{
		{Line: 1, HasCondition: true, When: cond(`record.kind == "skip"`), Action: rules.Drop, Reason: reason("skipped {{ record.id }}")},
		{Line: 2, HasCondition: true, When: cond(`record.kind == "bad"`), Action: rules.DeadLetter, Reason: reason("bad")},
		{Line: 3, HasCondition: true, When: cond(`record.kind == "both"`), Transform: "a", Continue: true},
		{Line: 4, HasCondition: true, When: cond(`record.kind in ["both", "b"]`), Transform: "b", Outputs: []string{"o2"}},
		{Line: 5, HasCondition: true, When: cond(`record.kind == "late"`), Action: rules.Drop, Reason: reason("late")},
	}
	tests := []struct {
		kind     string
		action   rules.Action
		reason   string
		branches []int
	}{
		{"skip", rules.Drop, "skipped 7", nil},
		{"bad", rules.DeadLetter, "bad", nil},
		{"both", rules.Route, "", []int{3, 4}},
		{"b", rules.Route, "", []int{4}},
		{"late", rules.Drop, "late", nil},
		{"other", rules.Drop, rules.NoMatchReason, nil},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			d, err := rules.Evaluate(rs, transforms.Env{Record: map[string]any{"kind": tc.kind, "id": 7}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tc.action || d.Reason != tc.reason || len(d.Branches) != len(tc.branches) {
				t.Fatalf("got %v %q %d branches", d.Action, d.Reason, len(d.Branches))
			}
			for i, b := range d.Branches {
				if b.Line != tc.branches[i] {
					t.Fatalf("branch %d is rule %d, want %d", i, b.Line, tc.branches[i])
				}
			}
		})
	}
	// A condition that fails to evaluate is an error (the record gets dead-lettered), not a silent skip.
	bad := []*rules.Rule{{HasCondition: true, When: cond(`lower(record.x) == "y"`)}}
	if _, err := rules.Evaluate(bad, transforms.Env{Record: map[string]any{"x": 5}}); err == nil {
		t.Fatal("want evaluation error")
	}
	if d, _ := rules.Evaluate(nil, transforms.Env{}); d.Action != rules.Route || len(d.Branches) != 1 {
		t.Fatal("no rules must route everything")
	}
}

func TestUnreachable(t *testing.T) {
	rs := []*rules.Rule{{Line: 1, HasCondition: true}, {Line: 2, Continue: true}, {Line: 3, Action: rules.Drop}, {Line: 4}}
	u := rules.Unreachable(rs)
	if len(u) != 1 || u[0].Line != 4 {
		t.Fatalf("unreachable: %v", u)
	}
}
