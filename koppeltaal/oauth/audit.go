package oauth

import (
	"context"
	"fmt"
	"net/http"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// withAuditRequest gives the records of the OAuth endpoints the request's
// source address and id (the FHIR API does the same after authentication).
func withAuditRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(audit.WithRequest(r.Context(), audit.RequestFromHTTP(r))))
	})
}

// clientActor is an OAuth client on Authorize or Token, acting for the user
// and patient of launch l in domain.
func clientActor(ctx context.Context, clientID, domain string, l launchRow) audit.Actor {
	return audit.Actor{Kind: audit.KindClient, Name: clientID, Application: clientID, Domain: domain, Client: clientID,
		LaunchUser: l.User, TokenPatient: l.Patient}.FromRequest(ctx)
}

func launchObject(id int64) string { return fmt.Sprintf("Launch/%d", id) }

// recordInTx records an action that wrote in tx, in tx (nil recorder: nothing).
func (s *Server) recordInTx(ctx context.Context, tx *store.Tx, ev audit.Event) error {
	ev.At = s.clock()
	return s.audit.InTx(ctx, tx, ev)
}

// recordRefusal records a refused launch, authorization or token request.
func (s *Server) recordRefusal(ctx context.Context, ev audit.Event) {
	ev.At = s.clock()
	if ev.Result == "" {
		ev.Result = audit.ResultOf(ev.Status)
	}
	s.audit.Record(ctx, ev)
}
