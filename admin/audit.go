package admin

import (
	"context"
	"log/slog"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// Action is one administrative action for the audit trail.
type Action struct {
	Principal *Principal
	// Verb is login, create, update, delete, revoke, replay, launch, read, ...
	Verb string
	// Object names what was acted on: "<Resource>/<id>" (e.g. ApplicationInstance/7).
	Object string
	// DomainID is the domain the object belongs to (0: none or several).
	DomainID int64
	// Detail is a short free text (changed attribute names, a count); never a secret or patient data.
	Detail string
	// Patient is whose data the action showed or changed (a message read in the browser), if any.
	Patient string
}

// Auditor records administrative actions. Record runs inside the transaction
// that makes the change (tx), so the record and the change commit together;
// a Record error rolls the change back.
type Auditor interface {
	Record(ctx context.Context, tx *store.Tx, a Action) error
	// Read records an action that changed nothing (an administrator reading patient data): it is not
	// part of a transaction, so a read takes no write transaction of its own (on SQLite, the one writer).
	Read(ctx context.Context, a Action)
}

// LogAuditor writes each action as a structured log line. It is the default
// until the audit trail of issue 11 is wired in (see docs/admin.md).
type LogAuditor struct{ Logger *slog.Logger }

// Record implements Auditor.
func (l LogAuditor) Record(ctx context.Context, _ *store.Tx, a Action) error {
	user, via, remote := "", "", ""
	if a.Principal != nil {
		user, via, remote = a.Principal.User.Username, a.Principal.Via, a.Principal.Remote
	}
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "admin action", slog.String("admin", user), slog.String("via", via),
		slog.String("remote", remote), slog.String("action", a.Verb), slog.String("object", a.Object),
		slog.Int64("domain_id", a.DomainID), slog.String("detail", a.Detail))
	return nil
}

// Read implements Auditor.
func (l LogAuditor) Read(ctx context.Context, a Action) { _ = l.Record(ctx, nil, a) }

// TrailAuditor records each action in the audit trail (package audit), in
// the transaction of the action.
type TrailAuditor struct{ Recorder *audit.Recorder }

// Record implements Auditor.
func (t TrailAuditor) Record(ctx context.Context, tx *store.Tx, a Action) error {
	return t.Recorder.InTx(ctx, tx, trailEvent(ctx, a))
}

// Read implements Auditor: the record is written within the trail's flush interval (audit.Recorder.Record).
func (t TrailAuditor) Read(ctx context.Context, a Action) { t.Recorder.Record(ctx, trailEvent(ctx, a)) }

func trailEvent(ctx context.Context, a Action) audit.Event {
	act := audit.Actor{Kind: audit.KindAdmin}
	if a.Principal != nil {
		act.Name, act.SourceIP = a.Principal.User.Username, a.Principal.Remote
	}
	act.RequestID = audit.RequestOf(ctx).RequestID
	detail := a.Verb
	if a.Detail != "" {
		detail += ": " + a.Detail
	}
	return audit.Event{Action: audit.ActionAdmin, Actor: act, Patient: a.Patient, Object: a.Object, Detail: detail}
}

var (
	_ Auditor = LogAuditor{}
	_ Auditor = TrailAuditor{}
)
