package routes

import (
	"fmt"
	"strings"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// checkDSTU1 parses the resources of the DSTU1 message a koppeltaal output would send for kt and reports what DSTU1 does not
// allow: an element the resource type does not have (birthdate for birthDate), a required element missing,
// a value its type does not accept (the codec's value checks). A route that produces such a message
// dead-letters the record with the reason — in route tests, in replies of inputs that answer their sender,
// and before anything is delivered — instead of sending XML subscribers a message they cannot read.
func checkDSTU1(transform string, kt *adapters.KoppeltaalMessage) error {
	m := client.Message{Event: kt.Event, Patient: kt.Patient}
	for _, r := range kt.Resources {
		m.Resources = append(m.Resources, client.Resource{Type: r.Type, ID: r.ID, Body: r.Body})
	}
	parsed, err := client.ParseResources(m)
	if err != nil {
		return fmt.Errorf("transform %s: %w", transform, err)
	}
	var problems []string
	for _, r := range parsed {
		for _, u := range r.UnknownElements() {
			problems = append(problems, fmt.Sprintf("%s is not a DSTU1 element%s", u.Path, strictyaml.Suggest(u.Name, u.Known)))
		}
		for _, p := range r.MissingRequired() {
			problems = append(problems, p+" is required")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("transform %s: the Koppeltaal message is not valid DSTU1: %s", transform, strings.Join(problems, "; "))
	}
	for i := range kt.Resources {
		kt.Resources[i].Parsed = parsed[i] // the output builds the message from these (build once)
	}
	return nil
}
