package testclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// Session is the module signed in for one patient (a launch).
type Session struct {
	m        *Module
	api      *client.Client
	tokenURL string
	// Token is what the Token endpoint answered: the launch patient, user, resource, domain.
	Token Token
}

// Handled is what the module did with one claimed message.
type Handled struct {
	Identifier string   `json:"identifier"`
	Event      string   `json:"event"`
	Patient    string   `json:"patient"`
	Activities []string `json:"activities,omitempty"` // the CarePlan activities it worked on
	Posted     []string `json:"posted,omitempty"`     // the messages it sent, e.g. "UpdateCarePlanActivityStatus InProgress"
	Stored     []string `json:"stored,omitempty"`     // the Storage Service items it wrote (their URLs)
	Refused    []string `json:"refused,omitempty"`    // messages the server refused, with the reason
	Ack        string   `json:"ack"`                  // the status it acknowledged: Success or Failed
	Exception  string   `json:"exception,omitempty"`
}

// Work claims the session patient's messages until none is left and handles each (see Module.Handle).
func (s *Session) Work(ctx context.Context) ([]Handled, error) {
	return s.m.drain(ctx, s.api, s.Token.Domain)
}

// drain claims with api until the mailbox (for a Bearer token: the patient's part of it) is empty.
func (m *Module) drain(ctx context.Context, api *client.Client, domain string) ([]Handled, error) {
	var out []Handled
	for ctx.Err() == nil {
		msg, err := api.Claim(ctx, client.ClaimFilter{})
		if err != nil {
			return out, fmt.Errorf("claim: %w", err)
		}
		if msg == nil {
			return out, nil
		}
		h, err := m.Handle(ctx, api, domain, msg)
		out = append(out, h)
		m.mu.Lock()
		m.history = append(m.history, h)
		m.mu.Unlock()
		if err != nil {
			return out, err
		}
	}
	return out, ctx.Err()
}

// Handle works on one claimed message and acknowledges it: for each activity of a CreateOrUpdateCarePlan
// that it implements it reports InProgress and then Completed (with its game state as a BlackBoxState),
// and a CreateOrUpdateCarePlanActivityResult; then it acknowledges Success. A CarePlan message without a
// CarePlan, or any message when FailWith is set, is acknowledged Failed with the reason. Other events are
// acknowledged Success: there is nothing to do for them.
func (m *Module) Handle(ctx context.Context, api *client.Client, domain string, msg *dstu1.Bundle) (Handled, error) {
	mh := msg.MessageHeader()
	h := Handled{Identifier: mh.Identifier(), Event: mh.EventCode(), Patient: stripHistory(mh.Patient())}
	if d, ok := msg.Domain(); ok && domain == "" {
		domain = d
	}
	m.log.Info("testclient: claimed a message", "event", h.Event, "identifier", h.Identifier, "patient", h.Patient)
	fail := m.cfg.FailWith
	if fail == "" && h.Event == "CreateOrUpdateCarePlan" {
		plan := focalEntry(msg)
		if plan == nil || plan.Resource.Type() != "CarePlan" {
			fail = "the CreateOrUpdateCarePlan message holds no CarePlan as its focal resource"
		} else if err := m.workOn(ctx, api, domain, &h, plan); err != nil {
			return h, err
		}
	}
	h.Ack, h.Exception = "Success", ""
	if fail != "" {
		h.Ack, h.Exception = "Failed", fail
	}
	if err := api.Ack(ctx, msg, h.Ack, h.Exception); err != nil {
		return h, fmt.Errorf("acknowledge %s %s: %w", h.Ack, h.Identifier, err)
	}
	m.log.Info("testclient: acknowledged", "identifier", h.Identifier, "status", h.Ack, "exception", h.Exception)
	return h, nil
}

// workOn plays the activities of plan that the module implements.
func (m *Module) workOn(ctx context.Context, api *client.Client, domain string, h *Handled, plan *dstu1.Entry) error {
	planURL := stripHistory(plan.SelfLink())
	for _, act := range plan.Resource.All("activity") {
		id := act.Extension(dstu1.ExtensionURLs(dstu1.KoppeltaalBase + "CarePlan#ActivityIdentifier")...).ExtensionValue().Str()
		def := act.Extension(dstu1.ExtensionURLs(dstu1.KoppeltaalBase + "CarePlan#ActivityDefinition")...).ExtensionValue().Str()
		if id == "" {
			id = act.ID // the older activity/@id form (SPEC.md §4.7)
		}
		if id == "" || (m.cfg.Activity != "" && def != m.cfg.Activity) {
			continue
		}
		h.Activities = append(h.Activities, id)
		key := resourceKey(planURL, id)
		for _, step := range []struct {
			status string
			pct    int
		}{{"InProgress", 50}, {"Completed", 100}} {
			state, _ := json.Marshal(map[string]any{"activity": id, "progress": step.pct, "level": step.pct / 25, "plan": planURL})
			u := StatusUpdate{Patient: h.Patient, Activity: id, ID: key, Status: step.status, Percentage: step.pct, State: state}
			if err := m.send(ctx, api, h, "UpdateCarePlanActivityStatus "+step.status, func(o client.BuildOptions) (*dstu1.Bundle, error) {
				return StatusMessage(u, o)
			}, domain); err != nil {
				return err
			}
		}
		if err := m.send(ctx, api, h, "CreateOrUpdateCarePlanActivityResult", func(o client.BuildOptions) (*dstu1.Bundle, error) {
			return ResultMessage(h.Patient, id, key, o)
		}, domain); err != nil {
			return err
		}
		if err := m.saveState(ctx, api, h, key, id); err != nil {
			return err
		}
	}
	return nil
}

// StateType is the objectType of the items the module keeps in the Storage Service.
const StateType = "testclient-state"

// saveState keeps the module's state for an activity in the Storage Service (SPEC.md §9): it reads the
// item it wrote before (counting the plays) and writes it back. A server without a Storage Service
// refuses the search with a 4xx; the module then keeps no state, as a module on such a server would.
func (m *Module) saveState(ctx context.Context, api *client.Client, h *Handled, key, activity string) error {
	items, err := api.SearchItems(ctx, h.Patient, url.Values{"objectType": {StateType}, "objectKey": {key}})
	var ke *client.Error
	if errors.As(err, &ke) && ke.Status >= 400 && ke.Status < 500 {
		m.log.Info("testclient: no Storage Service on this server; the state is not kept", "status", ke.Status)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the stored state: %w", err)
	}
	state := struct {
		Activity string `json:"activity"`
		Plays    int    `json:"plays"`
	}{Activity: activity}
	if len(items) > 0 {
		_ = json.Unmarshal(items[0].Content, &state)
	}
	state.Plays++
	content, _ := json.Marshal(state)
	it := dstu1.StorageItem{Patient: h.Patient, ObjectType: StateType, ObjectKey: key, ContentType: "application/json", Content: content}
	var saved client.Item
	if len(items) > 0 {
		saved, err = api.UpdateItem(ctx, items[0].URL, it)
	} else {
		saved, err = api.CreateItem(ctx, it)
	}
	if err != nil {
		return fmt.Errorf("store the state: %w", err)
	}
	h.Stored = append(h.Stored, saved.URL)
	m.log.Info("testclient: stored its state", "item", saved.URL, "plays", state.Plays)
	return nil
}

// send builds and posts one message, keeping the versions the server issued. A refusal (4xx) is noted
// and the module goes on, as a deployed module would; other errors end the work.
func (m *Module) send(ctx context.Context, api *client.Client, h *Handled, what string, build func(client.BuildOptions) (*dstu1.Bundle, error), domain string) error {
	b, err := build(client.BuildOptions{Domain: domain, ResourceBase: m.cfg.ResourceBase, SourceName: "Koppelpoort testclient",
		SourceSoftware: "Koppelpoort testclient", SourceVersion: "1.3.5", Version: m.version})
	if err != nil {
		return fmt.Errorf("build %s: %w", what, err)
	}
	reply, err := api.PostMessage(ctx, b)
	var ke *client.Error
	if errors.As(err, &ke) && ke.Status >= 400 && ke.Status < 500 {
		h.Refused = append(h.Refused, what+": HTTP "+fmt.Sprint(ke.Status)+": "+ke.Outcome)
		m.log.Warn("testclient: the server refused a message", "message", what, "status", ke.Status, "reason", ke.Outcome)
		return nil
	}
	if err != nil {
		return fmt.Errorf("post %s: %w", what, err)
	}
	m.mu.Lock()
	for u, v := range client.IssuedVersions(reply) {
		m.versions[u] = v
	}
	m.mu.Unlock()
	h.Posted = append(h.Posted, what)
	m.log.Info("testclient: posted", "message", what, "patient", h.Patient)
	return nil
}

func (m *Module) version(u string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[u]
}

// StatusUpdate is one UpdateCarePlanActivityStatus as a module sends it.
type StatusUpdate struct {
	Patient    string // the Patient URL (MessageHeader#Patient)
	Activity   string // the CarePlan activity identifier (CarePlanActivityStatus#Activity)
	ID         string // the id of the CarePlanActivityStatus under the module's base
	Status     string // a CarePlanActivityStatus code: InProgress, Completed, ...
	Percentage int
	// State is the module's own state, carried as the Test Game does: an Other resource coded
	// BlackBoxState (an opaque base64 blob under the module's URL) that the status refers to. nil: none.
	State []byte
}

// StatusMessage builds the UpdateCarePlanActivityStatus message of u (CLIENTS.md: What browser modules send).
func StatusMessage(u StatusUpdate, o client.BuildOptions) (*dstu1.Bundle, error) {
	ext := func(name string, v map[string]any) map[string]any {
		v["url"] = dstu1.KoppeltaalBase + "CarePlanActivityStatus#" + name
		return v
	}
	exts := []any{
		ext("Activity", map[string]any{"valueString": u.Activity}),
		ext("ActivityStatus", map[string]any{"valueCoding": map[string]any{"system": dstu1.KoppeltaalBase + "CarePlanActivityStatus", "code": u.Status, "display": u.Status}}),
		ext("PercentageCompleted", map[string]any{"valueInteger": u.Percentage}),
	}
	resources := []client.Resource{{Type: dstu1.KindCarePlanActivityStatus, ID: u.ID}}
	if u.State != nil {
		boxID := "blackbox-" + u.ID
		exts = append(exts, map[string]any{"url": strings.TrimRight(o.ResourceBase, "/") + "/Activity#BlackBoxState",
			"valueResource": map[string]any{"reference": client.ResourceURL(o.ResourceBase, "Other", boxID)}})
		resources = append(resources, client.Resource{Type: "Other", ID: boxID, Body: map[string]any{
			"extension": []any{map[string]any{"url": strings.TrimRight(o.ResourceBase, "/") + "/BlackBoxState#State",
				"valueBase64Binary": base64.StdEncoding.EncodeToString(u.State)}},
			"code": map[string]any{"coding": []any{map[string]any{"system": dstu1.SystemOtherResourceUsage, "code": "BlackBoxState", "display": "BlackBoxState"}}},
		}})
	}
	resources[0].Body = map[string]any{"extension": exts}
	return client.BuildMessage(client.Message{Event: "UpdateCarePlanActivityStatus", Patient: u.Patient, Resources: resources}, o)
}

// ResultMessage builds a CreateOrUpdateCarePlanActivityResult for an activity: an Other coded
// CarePlanActivityResult (TA form; the message is deprecated and SPEC.md §4.5 leaves it out of 1.3.5, so
// another server may refuse it — Koppelpoort routes it, decision 22).
func ResultMessage(patient, activity, id string, o client.BuildOptions) (*dstu1.Bundle, error) {
	return client.BuildMessage(client.Message{Event: "CreateOrUpdateCarePlanActivityResult", Patient: patient, Resources: []client.Resource{{
		Type: dstu1.KindCarePlanActivityResult, ID: "result-" + id, Body: map[string]any{"extension": []any{
			map[string]any{"url": dstu1.KoppeltaalBase + "CarePlanActivityResult#Activity", "valueString": activity},
		}},
	}}}, o)
}

// focalEntry is the entry of the message's focal resource (data[0]).
func focalEntry(b *dstu1.Bundle) *dstu1.Entry {
	focal := stripHistory(first(b.MessageHeader().Data()))
	for _, e := range b.Entries[1:] {
		if stripHistory(e.SelfLink()) == focal || e.ID == focal {
			return e
		}
	}
	return nil
}

// resourceKey is a stable id for the module's status resource of one activity of one CarePlan.
func resourceKey(plan, activity string) string {
	sum := sha256.Sum256([]byte(plan + "#" + activity))
	return hex.EncodeToString(sum[:8])
}

func stripHistory(u string) string {
	b, _ := dstu1.SplitHistory(u)
	return b
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func randomState() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeJSON(b []byte, v any) error { return json.Unmarshal(b, v) }
