package supportapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

// messageResource is the read-only Message type: posted messages with each
// recipient's processing status (SPEC.md §11.1 "sent messages with sender,
// receiver, timestamp, domain, status"). Searches are index seeks (store.BrowseMessages).
func (a *API) messageResource() Resource {
	return Resource{Type: "Message", Query: a.queryMessages, Get: a.getMessage,
		NotAllowed: map[string]string{"POST": "messages are posted to the Mailbox", "PATCH": "messages are read-only here",
			"DELETE": "messages are removed by the retention rules"}}
}

// messageFilters are the filters Message takes: attribute → the operators allowed.
var messageFilters = map[string][]string{
	"Patient": {"eq"}, "Event": {"eq"}, "Identifier": {"eq"}, "Sender": {"eq"}, "Recipient": {"eq"},
	"Status": {"eq"}, "Domain": {"eq"}, "CreatedAt": {"ge", "gt", "lt", "le"}, "id": {"lt"},
}

// browseQuery turns the JSON:API query into a store query within the caller's scope.
func (a *API) browseQuery(ctx context.Context, tx *store.Tx, v *view, q jsonapi.Query) (store.BrowseQuery, bool, error) {
	var bq store.BrowseQuery
	var errs jsonapi.Errors
	bad := func(param, format string, args ...any) {
		errs = append(errs, jsonapi.Error{Status: "400", Title: "Invalid filter", Detail: fmt.Sprintf(format, args...),
			Source: &jsonapi.ErrorSource{Parameter: param}})
	}
	if q.Search != "" || len(q.Sort) > 0 {
		bad("search", "Message takes filters, not search or sort (newest first)")
	}
	domainFilter := int64(0)
	empty := false // a filter names something outside the scope: nothing matches
	instByName := func(name string) int64 {
		for _, in := range v.insts {
			if in.Username == name && v.scope.HasInstance(in.DomainID, in.ApplicationID) {
				return in.ID
			}
		}
		return 0
	}
	for _, f := range q.Filters {
		param := "filter[" + f.Attr + "][" + f.Op + "]"
		ops, ok := messageFilters[f.Attr]
		if !ok || !contains(ops, f.Op) {
			bad(param, "Message filters: Patient, Event, Identifier, Sender, Recipient, Status, Domain (eq), CreatedAt (ge, gt, lt, le), id (lt)")
			continue
		}
		if len(f.Values) != 1 {
			bad(param, "one value per Message filter")
			continue
		}
		val := f.Values[0]
		switch f.Attr {
		case "Patient":
			bq.Patient = val
		case "Event":
			bq.Event = val
		case "Identifier":
			bq.Identifier = val
		case "Status":
			bq.Status = val
		case "Sender", "Recipient":
			id := instByName(val)
			if id == 0 {
				empty = true
			}
			if f.Attr == "Sender" {
				bq.SenderID = id
			} else {
				bq.RecipientID = id
			}
		case "Domain":
			domainFilter = -1
			for _, d := range v.domains {
				if d.Name == val {
					domainFilter = d.ID
				}
			}
		case "CreatedAt":
			t, err := jsonapi.ParseTime(val)
			if err != nil {
				bad(param, "CreatedAt %q: want RFC 3339 (2026-12-01T10:00:00Z) or a date", val)
				continue
			}
			us := t.UnixMicro()
			switch f.Op {
			case "ge":
				bq.From = us
			case "gt":
				bq.From = us + 1
			case "lt":
				bq.To = us
			case "le":
				bq.To = us + 1
			}
		case "id":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				bad(param, "id %q is not a message id", val)
			}
			bq.BeforeID = n
		}
	}
	if len(errs) > 0 {
		return bq, false, errs
	}
	switch {
	case v.scope.All:
		for _, d := range sortedDomains(v) {
			bq.DomainIDs = append(bq.DomainIDs, d.ID)
		}
	default:
		bq.DomainIDs = append(bq.DomainIDs, v.scope.DomainIDs...)
		for _, in := range v.insts {
			if v.scope.HasApplication(in.ApplicationID) && !v.scope.HasDomain(in.DomainID) {
				bq.InstanceIDs = append(bq.InstanceIDs, in.ID)
			}
		}
	}
	if domainFilter != 0 {
		bq.DomainIDs = keepIf(bq.DomainIDs, func(id int64) bool { return id == domainFilter })
		bq.InstanceIDs = keepIf(bq.InstanceIDs, func(id int64) bool {
			in, _ := instanceInScope(v, id)
			return in.DomainID == domainFilter
		})
	}
	return bq, empty, nil
}

func keepIf(ids []int64, keep func(int64) bool) []int64 {
	var out []int64
	for _, id := range ids {
		if keep(id) {
			out = append(out, id)
		}
	}
	return out
}

func (a *API) queryMessages(ctx context.Context, _ *http.Request, q jsonapi.Query) ([]jsonapi.Resource, int, bool, error) {
	if q.Offset()+q.Size > store.MaxBrowseRows {
		return nil, 0, false, jsonapi.Error{Status: "400", Title: "Page too deep",
			Detail: fmt.Sprintf("pages go %d messages deep; narrow the search or page with filter[id][lt]=<oldest id seen>", store.MaxBrowseRows),
			Source: &jsonapi.ErrorSource{Parameter: "page[number]"}}
	}
	var out []jsonapi.Resource
	var more bool
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		bq, empty, err := a.browseQuery(ctx, tx, v, q)
		if err != nil || empty {
			return err
		}
		bq.Limit = q.Offset() + q.Size
		rows, m, err := tx.BrowseMessages(ctx, bq)
		if err != nil {
			return err
		}
		more = m
		if q.Offset() >= len(rows) {
			return nil
		}
		rows = rows[q.Offset():]
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		rcpts, err := tx.RecipientsOf(ctx, ids)
		if err != nil {
			return err
		}
		byMsg := map[int64][]store.Recipient{}
		for _, r := range rcpts {
			byMsg[r.MessageID] = append(byMsg[r.MessageID], r)
		}
		for _, r := range rows {
			out = append(out, messageResourceOf(r, byMsg[r.ID], false))
		}
		a.auditSearch(ctx, "Message", len(rows), func(i int) (string, int64) { return rows[i].PatientRef, rows[i].DomainID })
		return nil
	})
	return out, -1, more, err
}

// messageResourceOf renders a message; detail adds each recipient's history and exception.
func messageResourceOf(m store.BrowsedMessage, rcpts []store.Recipient, detail bool) jsonapi.Resource {
	list := make([]map[string]any, 0, len(rcpts))
	for _, r := range rcpts {
		e := map[string]any{"Id": strconv.FormatInt(r.ID, 10), "Instance": r.Username, "Application": r.AppIdent,
			"Status": r.Status, "StatusChangedAt": Time(r.StatusChangedAt), "RetryCount": r.RetryCount}
		if detail {
			hist := []map[string]any{{"Status": store.StatusNew, "At": Time(r.CreatedAt)}}
			for _, h := range store.ParseStatusHistory(r.StatusHistory) {
				hist = append(hist, map[string]any{"Status": h.Status, "At": Time(h.At)})
			}
			e["History"] = hist
			e["Exception"] = r.Exception
			e["FetchedApiVersion"] = r.FetchedAPIVersion
		}
		list = append(list, e)
	}
	return jsonapi.Resource{Type: "Message", ID: strconv.FormatInt(m.ID, 10),
		Attributes: map[string]any{"Identifier": m.MessageIdentifier, "Event": m.Event, "Domain": m.DomainName,
			"Sender": m.SenderUsername, "Patient": m.PatientRef, "FocalResource": m.FocalRef, "FocalVersion": m.FocalVersion,
			"CreatedAt": Time(m.CreatedAt), "IsExpired": m.IsExpired, "Recipients": list}}
}

// messageVisible: the domain's administrators, or an application
// administrator whose instance sent or received it.
func messageVisible(v *view, m store.BrowsedMessage, rcpts []store.Recipient) bool {
	if v.scope.HasDomain(m.DomainID) {
		return true
	}
	mine := func(id int64) bool {
		in, err := instanceInScope(v, id)
		return err == nil && v.scope.HasApplication(in.ApplicationID)
	}
	if m.SenderInstanceID != 0 && mine(m.SenderInstanceID) {
		return true
	}
	for _, r := range rcpts {
		if mine(r.InstanceID) {
			return true
		}
	}
	return false
}

// getMessage reads one message with its body in both formats; the read is audited (patient data).
func (a *API) getMessage(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	var m store.BrowsedMessage
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		var err error
		m, err = tx.BrowsedMessageByID(ctx, n)
		if err != nil {
			return err
		}
		rcpts, err := tx.RecipientsOf(ctx, []int64{n})
		if err != nil {
			return err
		}
		if !messageVisible(v, m, rcpts) {
			return jsonapi.ErrNotFound
		}
		out = messageResourceOf(m, rcpts, true)
		if m.BodyID != 0 {
			format, body, err := tx.Body(ctx, m.BodyID)
			if err != nil {
				return err
			}
			xmlBody, jsonBody, err := bothFormats(format, body)
			if err != nil {
				out.Attributes["BodyError"] = err.Error()
			}
			out.Attributes["BodyXML"], out.Attributes["BodyJSON"], out.Attributes["BodyFormat"] = xmlBody, jsonBody, format
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return out, jsonapi.ErrNotFound
	}
	if err == nil {
		a.AuditRead(ctx, "Message/"+id, m.DomainID, "with body", m.PatientRef)
	}
	return out, err
}

// bothFormats renders a stored body as XML and as JSON.
func bothFormats(format string, body []byte) (string, string, error) {
	f := dstu1.FormatXML
	if strings.EqualFold(format, "json") {
		f = dstu1.FormatJSON
	}
	b, err := dstu1.ParseBundle(body, f)
	if err != nil {
		if f == dstu1.FormatJSON {
			return "", string(body), fmt.Errorf("stored body does not parse: %v", err)
		}
		return string(body), "", fmt.Errorf("stored body does not parse: %v", err)
	}
	return string(b.XML()), string(b.JSON()), nil
}
