package admin

import (
	"context"
	"log/slog"

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
}

// Auditor records administrative actions. Record runs inside the transaction
// that makes the change (tx), so the record and the change commit together;
// a Record error rolls the change back.
type Auditor interface {
	Record(ctx context.Context, tx *store.Tx, a Action) error
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

var _ Auditor = LogAuditor{}
