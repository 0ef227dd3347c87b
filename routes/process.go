package routes

import (
	"encoding/json"
	"fmt"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/rules"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// Outcome is what happened to one record.
type Outcome string

// Outcomes of Process.
const (
	Routed       Outcome = "routed"
	Dropped      Outcome = "dropped"
	DeadLettered Outcome = "dead_lettered"
)

// Stages of a route where a record can be dead-lettered; the dead letter records which one (its stage).
const (
	StageInput     = "input"     // the record's views (an mllp message that does not parse) or its key
	StageRules     = "rules"     // a dead_letter rule, or a condition that fails to evaluate
	StageTransform = "transform" // a transform that fails, or a message DSTU1 does not accept
)

// Result is the outcome of processing one record: deliveries to make, or the reason it was dropped or
// dead-lettered (and at which stage).
type Result struct {
	Outcome    Outcome
	Key        string
	Reason     string
	Stage      string
	Deliveries []adapters.Delivery
}

// Process runs the rules and transforms for one record. The idempotency key of a delivery covers the route,
// output, record key, content and the record's meta "source_id" (which identifies one export file or one
// request), so re-reading the same source never delivers twice while a later export with the same content
// still does. It does no I/O: the runtime (or a route test) makes
// the deliveries. Evaluation errors dead-letter the record with the error as reason.
func (r *Route) Process(rec adapters.Record) Result {
	env := transforms.Env{Record: rec.Fields, Meta: rec.Meta, Route: r.Name}
	key := rec.Key
	views, err := r.engine.Views(rec.Fields)
	if err != nil {
		return Result{Outcome: DeadLettered, Stage: StageInput, Key: key, Reason: err.Error()}
	}
	env.Views = views
	if r.Key != nil {
		v, err := r.Key.Eval(env)
		if err != nil {
			return Result{Outcome: DeadLettered, Stage: StageInput, Key: key, Reason: fmt.Sprintf("key: %v", err)}
		}
		if s := transforms.Text(v); s != "" {
			key = s
		}
	}
	d, err := rules.Evaluate(r.Rules, env)
	if err != nil {
		return Result{Outcome: DeadLettered, Stage: StageRules, Key: key, Reason: err.Error()}
	}
	switch d.Action {
	case rules.Drop:
		return Result{Outcome: Dropped, Key: key, Reason: d.Reason}
	case rules.DeadLetter:
		return Result{Outcome: DeadLettered, Stage: StageRules, Key: key, Reason: d.Reason}
	}
	res := Result{Outcome: Routed, Key: key}
	for _, b := range d.Branches {
		fields, kt, err := r.apply(b.Transform, rec, env)
		if err != nil {
			return Result{Outcome: DeadLettered, Stage: StageTransform, Key: key, Reason: err.Error()}
		}
		outs := b.Outputs
		if len(outs) == 0 {
			for _, o := range r.Outputs {
				outs = append(outs, o.Name)
			}
		}
		content, err := json.Marshal(struct {
			F map[string]any
			K *adapters.KoppeltaalMessage
		}{fields, kt})
		if err != nil {
			return Result{Outcome: DeadLettered, Stage: StageTransform, Key: key, Reason: fmt.Sprintf("encode transform result: %v", err)}
		}
		hash := transforms.StableID(string(content))
		for _, o := range outs {
			res.Deliveries = append(res.Deliveries, adapters.Delivery{
				Route: r.Name, Output: o, RecordKey: key,
				IdempotencyKey: transforms.StableID(r.Name, o, key, string(content), rec.Meta["source_id"]),
				ContentHash:    hash, Fields: fields, Koppeltaal: kt,
			})
		}
	}
	return res
}

func (r *Route) apply(name string, rec adapters.Record, env transforms.Env) (map[string]any, *adapters.KoppeltaalMessage, error) {
	if name == "" {
		return rec.Fields, nil, nil
	}
	t := r.Transforms[name]
	fields := rec.Fields
	if t.Fields != nil {
		v, err := t.Fields.eval(env)
		if err != nil {
			return nil, nil, fmt.Errorf("transform %s: %w", name, err)
		}
		fields, _ = v.(map[string]any)
		if fields == nil {
			fields = map[string]any{}
		}
	}
	if t.Koppeltaal == nil {
		return fields, nil, nil
	}
	env.Vars = fields
	kt := &adapters.KoppeltaalMessage{Event: t.Koppeltaal.Event}
	if t.Koppeltaal.Patient != nil {
		v, err := t.Koppeltaal.Patient.Eval(env)
		if err != nil {
			return nil, nil, fmt.Errorf("transform %s: koppeltaal.patient: %w", name, err)
		}
		kt.Patient = transforms.Text(v)
		if kt.Patient == "" {
			return nil, nil, fmt.Errorf("transform %s: koppeltaal.patient is empty", name)
		}
	}
	for _, rt := range t.Koppeltaal.Resources {
		idv, err := rt.ID.Eval(env)
		if err != nil {
			return nil, nil, fmt.Errorf("transform %s: %s id: %w", name, rt.Type, err)
		}
		id := transforms.Text(idv)
		if id == "" {
			return nil, nil, fmt.Errorf("transform %s: %s id is empty", name, rt.Type)
		}
		body := map[string]any{}
		if rt.Fields != nil {
			v, err := rt.Fields.eval(env)
			if err != nil {
				return nil, nil, fmt.Errorf("transform %s: %s: %w", name, rt.Type, err)
			}
			body, _ = v.(map[string]any)
		}
		kt.Resources = append(kt.Resources, adapters.KoppeltaalResource{Type: rt.Type, ID: id, Body: body})
	}
	if err := checkDSTU1(name, kt); err != nil {
		return nil, nil, err
	}
	return fields, kt, nil
}

// eval evaluates a value tree; nil results are left out of objects and lists, so optional FHIR elements
// (an empty phone number) disappear instead of becoming null.
func (v *Value) eval(env transforms.Env) (any, error) {
	switch {
	case v.Expr != nil:
		return v.Expr.Eval(env)
	case v.Object != nil:
		out := make(map[string]any, len(v.Object))
		for _, k := range v.Keys {
			x, err := v.Object[k].eval(env)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if x != nil {
				out[k] = x
			}
		}
		return out, nil
	case v.List != nil:
		out := make([]any, 0, len(v.List))
		for i, item := range v.List {
			x, err := item.eval(env)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if x != nil {
				out = append(out, x)
			}
		}
		return out, nil
	}
	return nil, nil
}

// Engine returns the route's expression engine (route tests compile their assertions with it).
func (r *Route) Engine() *transforms.Engine { return r.engine }
